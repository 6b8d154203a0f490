using Akka.Actor;
using ApbCluster.Contracts;
using Prometheus;

namespace ApbCluster.Runtime.Metrics;

/// <summary>
/// The node's Prometheus endpoint (GET /metrics), prometheus-net's HttpListener-based
/// MetricServer, no Kestrel. Before each scrape it refreshes the gauges that live in actors:
/// the router's queue, in-flight count and host list (router nodes) and this node's hosts.
/// </summary>
public sealed class MetricsEndpoint : IDisposable
{
    private static readonly TimeSpan AskTimeout = TimeSpan.FromSeconds(2);
    private static readonly List<Func<CancellationToken, Task>> Refreshers = [];
    private static int _callbackAdded;

    private readonly MetricServer _server;
    private readonly Func<CancellationToken, Task> _refresh;

    public MetricsEndpoint(string host, int port, IActorRef? routerProxy, IReadOnlyList<IActorRef> localHosts)
    {
        // "+" lets HttpListener accept any address; anything else binds that host only.
        _server = new MetricServer(host is "0.0.0.0" or "*" ? "+" : host, port, "metrics/");
        _server.Start();
        Port = port;
        _refresh = ct => RefreshAsync(routerProxy, localHosts, ct);
        lock (Refreshers) Refreshers.Add(_refresh);
        if (Interlocked.Exchange(ref _callbackAdded, 1) == 0)
            Prometheus.Metrics.DefaultRegistry.AddBeforeCollectCallback(RefreshAllAsync);
    }

    public int Port { get; }

    private static async Task RefreshAllAsync(CancellationToken ct)
    {
        Func<CancellationToken, Task>[] refreshers;
        lock (Refreshers) refreshers = [.. Refreshers];
        await Task.WhenAll(refreshers.Select(r => r(ct)));
    }

    /// <summary>Best effort: a router that does not answer leaves the last values (scrapes never fail).</summary>
    private static async Task RefreshAsync(IActorRef? routerProxy, IReadOnlyList<IActorRef> localHosts, CancellationToken ct)
    {
        try
        {
            if (routerProxy is not null)
            {
                var status = await routerProxy.Ask<ClusterStatus>(GetClusterStatus.Instance, AskTimeout, ct);
                ApbMetrics.SetQueue(status.QueueDepth, status.InFlight);
                ApbMetrics.SetHosts(status.Hosts);
            }
            foreach (var host in localHosts)
                foreach (var h in (await host.Ask<ClusterStatus>(GetClusterStatus.Instance, AskTimeout, ct)).Hosts)
                    ApbMetrics.SetHost(h);
        }
        catch (Exception e) when (e is AskTimeoutException or OperationCanceledException or TaskCanceledException)
        {
            // keep the last values
        }
    }

    private int _disposed;

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        lock (Refreshers) Refreshers.Remove(_refresh);
        _server.Stop();
    }
}
