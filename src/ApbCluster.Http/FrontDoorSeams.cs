using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace ApbCluster.Http;

/// <summary>
/// What the front door counts. The node exports it under the cluster's metric names (apb_http_requests_total,
/// apb_queries_total), so the front door needs no metrics library of its own and dashboards see one set of series.
/// </summary>
public interface IFrontDoorMetrics
{
    /// <param name="route">"chat", "models", "health" or "other".</param>
    void Request(string route, int status);

    /// <param name="why">"busy" (the router's queue is full) or "rejected" (limits, a bad request).</param>
    void Refused(string why);
}

/// <summary>GET /health's answer: whether the router can serve, in words an operator can act on. The node supplies the
/// rule (the same one `apb admin node health` uses).</summary>
public interface IRouterHealth
{
    Task<(bool Healthy, string Detail)> CheckAsync(CancellationToken ct);
}

internal static class FrontDoorMetrics
{
    /// <summary>The node's metrics, registered once per server (static helpers reach them through the request).</summary>
    public static IFrontDoorMetrics Of(HttpContext ctx) => ctx.RequestServices.GetRequiredService<IFrontDoorMetrics>();
}
