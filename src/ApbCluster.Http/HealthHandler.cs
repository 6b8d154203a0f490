using Microsoft.AspNetCore.Http;

namespace ApbCluster.Http;

/// <summary>
/// GET /health, for a load balancer in front of the router nodes: 200 while the router singleton answers and has its
/// expected hosts, else 503, both with {"healthy", "detail"} (the same rule as `apb admin node health`).
/// </summary>
internal static class HealthHandler
{
    public sealed record Health(bool Healthy, string Detail);

    public static async Task GetAsync(HttpContext ctx, IRouterHealth health)
    {
        var (ok, detail) = await health.CheckAsync(ctx.RequestAborted);
        ctx.Response.StatusCode = ok ? 200 : 503;
        FrontDoorMetrics.Of(ctx).Request("health", ctx.Response.StatusCode);
        await ctx.Response.WriteAsJsonAsync(new Health(ok, detail), HttpResults.Json, ctx.RequestAborted);
    }
}
