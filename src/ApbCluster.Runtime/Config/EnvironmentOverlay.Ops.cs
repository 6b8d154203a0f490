using System.Globalization;
using System.Text;

namespace ApbCluster.Runtime.Config;

/// <summary>Operations variables: metrics and HTTP endpoints, request limits (see <see cref="OpsSettings"/>).</summary>
public static partial class EnvironmentOverlay
{
    // A property, not a field: Variables (other file) reads it during static initialisation,
    // and field initialisers of partial files run in no guaranteed order.
    public static IReadOnlyList<string> OpsVariables =>
    [
        "APB_METRICS_HOST", "APB_METRICS_PORT", "APB_HTTP_HOST", "APB_HTTP_PORT",
        "APB_MAX_CONTEXT_CHARS", "APB_MAX_NEW_TOKENS", "APB_MAX_CONCURRENT_QUERIES", "APB_REQUEST_TIMEOUT",
    ];

    private static void AppendOps(IReadOnlyDictionary<string, string?> env, StringBuilder hocon)
    {
        if (Get(env, "APB_METRICS_HOST") is { } metricsHost)
            hocon.AppendLine($"apb.metrics.host = {Quote(metricsHost)}");
        if (Get(env, "APB_METRICS_PORT") is { } metricsPort)
            hocon.AppendLine($"apb.metrics.port = {ParsePort("APB_METRICS_PORT", metricsPort, allowZero: true)}");
        if (Get(env, "APB_HTTP_HOST") is { } httpHost)
            hocon.AppendLine($"apb.http.host = {Quote(httpHost)}");
        if (Get(env, "APB_HTTP_PORT") is { } httpPort)
            hocon.AppendLine($"apb.http.port = {ParsePort("APB_HTTP_PORT", httpPort, allowZero: true)}");
        if (Get(env, "APB_MAX_CONTEXT_CHARS") is { } contextChars)
            hocon.AppendLine($"apb.limits.max-context-chars = {ParseCount("APB_MAX_CONTEXT_CHARS", contextChars, max: 1 << 30)}");
        if (Get(env, "APB_MAX_NEW_TOKENS") is { } newTokens)
            hocon.AppendLine($"apb.limits.max-new-tokens = {ParseCount("APB_MAX_NEW_TOKENS", newTokens, max: 1 << 20)}");
        if (Get(env, "APB_MAX_CONCURRENT_QUERIES") is { } concurrent)
            hocon.AppendLine($"apb.limits.max-concurrent-queries = {ParseCount("APB_MAX_CONCURRENT_QUERIES", concurrent, max: 4096)}");
        if (Get(env, "APB_REQUEST_TIMEOUT") is { } timeout)
            hocon.AppendLine($"apb.limits.request-timeout = {ParseCount("APB_REQUEST_TIMEOUT", timeout, max: 86_400)}s");
    }
}
