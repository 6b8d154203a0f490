using HoconConfig = Akka.Configuration.Config;

namespace ApbCluster.Runtime.Config;

/// <summary>
/// Metrics and HTTP endpoints (port 0 = off; loopback unless configured) and the limits the
/// HTTP front door enforces before a request reaches the router.
/// </summary>
public sealed record OpsSettings(
    string MetricsHost,
    int MetricsPort,
    string HttpHost,
    int HttpPort,
    int MaxContextChars,
    int MaxNewTokens,
    int MaxConcurrentQueries,
    TimeSpan RequestTimeout)
{
    /// <summary>How long a new HTTP request waits for the router singleton during a failover (apb.http.router-wait).</summary>
    public TimeSpan RouterWait { get; init; } = TimeSpan.FromSeconds(20);

    /// <summary>GET /health is 503 while the router has fewer registered, reachable hosts (apb.router.expected-hosts).</summary>
    public int ExpectedHosts { get; init; } = 1;

    public static OpsSettings Read(HoconConfig c) => new(
        MetricsHost: c.GetString("apb.metrics.host", "127.0.0.1"),
        MetricsPort: c.GetInt("apb.metrics.port", 0),
        HttpHost: c.GetString("apb.http.host", "127.0.0.1"),
        HttpPort: c.GetInt("apb.http.port", 0),
        MaxContextChars: c.GetInt("apb.limits.max-context-chars", 2_000_000),
        MaxNewTokens: c.GetInt("apb.limits.max-new-tokens", 4096),
        MaxConcurrentQueries: c.GetInt("apb.limits.max-concurrent-queries", 16),
        RequestTimeout: c.GetTimeSpan("apb.limits.request-timeout", TimeSpan.FromMinutes(5)))
    {
        RouterWait = c.GetTimeSpan("apb.http.router-wait", TimeSpan.FromSeconds(20)),
        ExpectedHosts = c.GetInt("apb.router.expected-hosts", 1),
    };
}
