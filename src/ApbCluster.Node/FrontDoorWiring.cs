using Akka.Actor;
using ApbCluster.Http;
using ApbCluster.Runtime.Config;
using ApbCluster.Runtime.Metrics;
using ApbCluster.Runtime.Ops;

namespace ApbCluster.Node;

/// <summary>
/// Plugs the HTTP front door into a node: its settings from the node's configuration, GET /health by the router's
/// health rule, and its counts into the node's Prometheus metrics (same names as every other apb_ series).
/// </summary>
public static class FrontDoorWiring
{
    public static HttpSettings Settings(OpsSettings ops) => new()
    {
        Host = ops.HttpHost,
        Port = ops.HttpPort,
        MaxContextChars = ops.MaxContextChars,
        MaxNewTokens = ops.MaxNewTokens,
        MaxConcurrentQueries = ops.MaxConcurrentQueries,
        RequestTimeout = ops.RequestTimeout,
        RouterWait = ops.RouterWait,
    };

    public static Task<HttpFrontDoor> StartAsync(ActorSystem system, IActorRef routerProxy, OpsSettings ops) =>
        HttpFrontDoor.StartAsync(system, routerProxy, Settings(ops), new Health(routerProxy, ops.ExpectedHosts), new Metrics());

    /// <summary>The router answers and has its expected hosts (apb.router.expected-hosts).</summary>
    private sealed class Health(IActorRef routerProxy, int expectedHosts) : IRouterHealth
    {
        public Task<(bool Healthy, string Detail)> CheckAsync(CancellationToken ct) => RouterHealth.CheckAsync(routerProxy, expectedHosts, ct);
    }

    private sealed class Metrics : IFrontDoorMetrics
    {
        public void Request(string route, int status) => ApbMetrics.HttpRequest(route, status);

        public void Refused(string why) => ApbMetrics.QueryRefused(why);
    }
}
