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
    public static OpsSettings Read(HoconConfig c) => new(
        MetricsHost: c.GetString("apb.metrics.host", "127.0.0.1"),
        MetricsPort: c.GetInt("apb.metrics.port", 0),
        HttpHost: c.GetString("apb.http.host", "127.0.0.1"),
        HttpPort: c.GetInt("apb.http.port", 0),
        MaxContextChars: c.GetInt("apb.limits.max-context-chars", 2_000_000),
        MaxNewTokens: c.GetInt("apb.limits.max-new-tokens", 4096),
        MaxConcurrentQueries: c.GetInt("apb.limits.max-concurrent-queries", 16),
        RequestTimeout: c.GetTimeSpan("apb.limits.request-timeout", TimeSpan.FromMinutes(5)));
}
