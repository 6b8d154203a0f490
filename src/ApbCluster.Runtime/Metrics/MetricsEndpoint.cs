using System.Net;
using Akka.Actor;
using ApbCluster.Contracts;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Prometheus;

namespace ApbCluster.Runtime.Metrics;

/// <summary>
/// The node's Prometheus endpoint (GET /metrics) on a bare Kestrel. Kestrel binds the configured
/// address and answers whatever Host header a scraper sends (HttpListener, prometheus-net's own
/// MetricServer, matches its prefix against the Host header, so "localhost:9464" got a 404 from a
/// server bound to 127.0.0.1). Before each scrape it refreshes the gauges that live in actors:
/// the router's queue, in-flight count and host list (router nodes) and this node's hosts.
/// </summary>
public sealed class MetricsEndpoint : IDisposable
{
    private static readonly TimeSpan AskTimeout = TimeSpan.FromSeconds(2);
    private static readonly List<Func<CancellationToken, Task>> Refreshers = [];
    private static int _callbackAdded;

    private readonly WebApplication _server;
    private readonly Func<CancellationToken, Task> _refresh;

    public MetricsEndpoint(string host, int port, IActorRef? routerProxy, IReadOnlyList<IActorRef> localHosts)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Listen(host is "0.0.0.0" or "*" or "+" ? IPAddress.Any : IPAddress.TryParse(host, out var ip) ? ip : Dns.GetHostAddresses(host)[0], port);
            k.AddServerHeader = false;
        });
        _server = builder.Build();
        _server.MapGet("/metrics", Scrape);
        _server.StartAsync().GetAwaiter().GetResult();
        Port = port;
        _refresh = ct => RefreshAsync(routerProxy, localHosts, ct);
        lock (Refreshers) Refreshers.Add(_refresh);
        if (Interlocked.Exchange(ref _callbackAdded, 1) == 0)
            Prometheus.Metrics.DefaultRegistry.AddBeforeCollectCallback(RefreshAllAsync);
    }

    public int Port { get; }

    /// <summary>The text exposition format; collecting runs the before-collect refreshers.</summary>
    private static async Task Scrape(HttpContext ctx)
    {
        ctx.Response.ContentType = PrometheusConstants.TextContentTypeWithVersionAndEncoding;
        await Prometheus.Metrics.DefaultRegistry.CollectAndExportAsTextAsync(ctx.Response.Body, ctx.RequestAborted);
    }

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
        _server.StopAsync().GetAwaiter().GetResult();
        _server.DisposeAsync().AsTask().GetAwaiter().GetResult();
    }
}
