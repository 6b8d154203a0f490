using System.Text.Json;
using Microsoft.AspNetCore.Http;

namespace ApbCluster.Http;

/// <summary>Writes JSON bodies and OpenAI errors, counting each response in apb_http_requests_total.</summary>
internal static class HttpResults
{
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public static async Task Ok(HttpContext ctx, object body, string route)
    {
        FrontDoorMetrics.Of(ctx).Request(route, 200);
        await ctx.Response.WriteAsJsonAsync(body, Json, ctx.RequestAborted);
    }

    public static async Task Error(HttpContext ctx, OpenAiError error, string route)
    {
        FrontDoorMetrics.Of(ctx).Request(route, error.Status);
        ctx.Response.StatusCode = error.Status;
        if (error.Status == 429) ctx.Response.Headers.RetryAfter = "1";
        await ctx.Response.WriteAsJsonAsync(error.WithRequestId(RequestIds.Of(ctx)).Body, Json, ctx.RequestAborted);
    }
}
