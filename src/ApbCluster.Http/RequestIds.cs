using Akka.Event;
using Microsoft.AspNetCore.Http;

namespace ApbCluster.Http;

/// <summary>
/// Every request gets an id, sent back as the x-request-id header (OpenAI's clients expose it as
/// error.request_id) and named in every error message, so a user can quote it and an operator can
/// find the details in the node's log. Anything that escapes a handler becomes a counted, logged
/// 500 with that id instead of Kestrel's empty body; the exception text stays in the log.
/// </summary>
internal static class RequestIds
{
    private const string Key = "apb-request-id";

    public static string Of(HttpContext ctx) =>
        ctx.Items.TryGetValue(Key, out var id) && id is string s ? s : "-";

    public static async Task Middleware(HttpContext ctx, RequestDelegate next, ILoggingAdapter log)
    {
        var id = $"req-{Guid.NewGuid():N}"[..20];
        ctx.Items[Key] = id;
        ctx.Response.Headers["x-request-id"] = id;
        try
        {
            await next(ctx);
        }
        catch (Exception e) when (!ctx.RequestAborted.IsCancellationRequested)
        {
            log.Error(e, "http request {0} {1} {2} failed", id, ctx.Request.Method, ctx.Request.Path);
            if (ctx.Response.HasStarted)
            {
                FrontDoorMetrics.Of(ctx).Request("other", 500);
                return; // the status line is gone; the client sees the stream end
            }
            ctx.Response.Clear();
            ctx.Response.Headers["x-request-id"] = id;
            await HttpResults.Error(ctx, new OpenAiError(500, "internal error; the details are in the router node's log", "server_error", null, "internal_error"), "other");
        }
    }
}
