using System.Globalization;
using System.Text;
using Akka.Configuration;
using ApbCluster.Parallel.Serving;
using HoconConfig = Akka.Configuration.Config;

namespace ApbCluster.Runtime.Config;

/// <summary>
/// Turns CLUSTER_* / APB_* environment variables into a HOCON overlay. Done in code because
/// Akka's HOCON parser cannot read environment variables. Every value is validated here so
/// a bad one fails at boot with the variable's name, not deep inside Akka.
/// </summary>
public static partial class EnvironmentOverlay
{
    /// <summary>Variables the node reads; docs/configuration.md describes each.</summary>
    public static readonly IReadOnlyList<string> Variables =
    [
        "CLUSTER_IP", "CLUSTER_PUBLIC_HOSTNAME", "CLUSTER_PORT", "CLUSTER_SEEDS", "CLUSTER_ROLES",
        "APB_CONFIG", "APB_SYSTEM_NAME", "APB_ADMIN_HOST", "APB_ADMIN_PORT", "APB_ADMIN_TOKEN",
        "APB_VIRTUAL_HOSTS", "APB_DEVICE", "APB_MODEL_DIR", "APB_LOG_LEVEL",
        "APB_MODEL", "APB_DATA_PORT", "APB_ROUTER_QUEUE", "APB_QUERY_TIMEOUT", "APB_COLLECTIVE_TIMEOUT", "APB_TEST_LAYER_DELAY_MS",
        "APB_MAX_QUERIES", "APB_BATCH_DECODE", "APB_KV_MEMORY", "APB_ROUTER_MAX_IN_FLIGHT",
        .. OpsVariables,
        .. SecurityVariables,
    ];

    public static HoconConfig Build(IReadOnlyDictionary<string, string?> env, string systemName)
    {
        var hocon = new StringBuilder();
        if (Get(env, "CLUSTER_IP") is { } ip)
            hocon.AppendLine($"akka.remote.dot-netty.tcp.hostname = {Quote(ip)}");
        if (Get(env, "CLUSTER_PUBLIC_HOSTNAME") is { } publicHost)
            hocon.AppendLine($"akka.remote.dot-netty.tcp.public-hostname = {Quote(publicHost)}");
        if (Get(env, "CLUSTER_PORT") is { } port)
            hocon.AppendLine($"akka.remote.dot-netty.tcp.port = {ParsePort("CLUSTER_PORT", port, allowZero: true)}");
        if (Get(env, "CLUSTER_SEEDS") is { } seeds)
            hocon.AppendLine($"akka.cluster.seed-nodes = [{string.Join(", ", ParseSeeds(seeds, systemName).Select(Quote))}]");
        if (Get(env, "CLUSTER_ROLES") is { } roles)
            hocon.AppendLine($"akka.cluster.roles = [{string.Join(", ", ParseRoles("CLUSTER_ROLES", roles).Select(Quote))}]");
        if (Get(env, "APB_ADMIN_HOST") is { } adminHost)
            hocon.AppendLine($"apb.admin.host = {Quote(adminHost)}");
        if (Get(env, "APB_ADMIN_PORT") is { } adminPort)
            hocon.AppendLine($"apb.admin.port = {ParsePort("APB_ADMIN_PORT", adminPort, allowZero: true)}");
        if (Get(env, "APB_ADMIN_TOKEN") is { } token)
            hocon.AppendLine($"apb.admin.token = {Quote(token)}");
        if (Get(env, "APB_VIRTUAL_HOSTS") is { } virtualHosts)
            hocon.AppendLine($"apb.gpu-host.virtual-hosts = {ParseCount("APB_VIRTUAL_HOSTS", virtualHosts, max: 64)}");
        if (Get(env, "APB_DEVICE") is { } device)
            hocon.AppendLine($"apb.gpu-host.device = {Quote(ParseDevice(device))}");
        if (Get(env, "APB_MODEL_DIR") is { } modelDir)
            hocon.AppendLine($"apb.gpu-host.model-dir = {Quote(modelDir)}");
        if (Get(env, "APB_MODEL") is { } model)
            hocon.AppendLine($"apb.model = {Quote(model)}");
        if (Get(env, "APB_DATA_PORT") is { } dataPort)
            hocon.AppendLine($"apb.data-plane.port = {ParsePort("APB_DATA_PORT", dataPort, allowZero: true)}");
        if (Get(env, "APB_ROUTER_QUEUE") is { } queue)
            hocon.AppendLine($"apb.router.queue-capacity = {ParseCount("APB_ROUTER_QUEUE", queue, max: 100_000)}");
        if (Get(env, "APB_QUERY_TIMEOUT") is { } queryTimeout)
            hocon.AppendLine($"apb.router.query-timeout = {ParseCount("APB_QUERY_TIMEOUT", queryTimeout, max: 86_400)}s");
        if (Get(env, "APB_COLLECTIVE_TIMEOUT") is { } collectiveTimeout)
            hocon.AppendLine($"apb.data-plane.collective-timeout = {ParseCount("APB_COLLECTIVE_TIMEOUT", collectiveTimeout, max: 3_600)}s");
        if (Get(env, "APB_TEST_LAYER_DELAY_MS") is { } delay)
            hocon.AppendLine($"apb.gpu-host.test-layer-delay = {ParseCount("APB_TEST_LAYER_DELAY_MS", delay, max: 60_000)}ms");
        if (Get(env, "APB_MAX_QUERIES") is { } maxQueries)
            hocon.AppendLine($"apb.gpu-host.max-queries = {ParseCount("APB_MAX_QUERIES", maxQueries, max: 1024)}");
        if (Get(env, "APB_BATCH_DECODE") is { } batchDecode)
            hocon.AppendLine($"apb.gpu-host.batch-decode = {ParseSwitch("APB_BATCH_DECODE", batchDecode)}");
        if (Get(env, "APB_PREFILL_POLICY") is { } prefillPolicy)
            hocon.AppendLine($"apb.gpu-host.prefill-policy = {Quote(ParsePrefillPolicy(prefillPolicy))}");
        if (Get(env, "APB_KV_MEMORY") is { } kvMemory)
            hocon.AppendLine($"apb.gpu-host.kv-memory = {ParseByteSize("APB_KV_MEMORY", kvMemory)}");
        if (Get(env, "APB_HOST_KV_MEMORY") is { } hostKvMemory)
            hocon.AppendLine($"apb.gpu-host.host-kv-memory = {ParseByteSize("APB_HOST_KV_MEMORY", hostKvMemory)}");
        if (Get(env, "APB_ROUTER_MAX_IN_FLIGHT") is { } inFlight)
            hocon.AppendLine($"apb.router.max-in-flight = {ParseCount("APB_ROUTER_MAX_IN_FLIGHT", inFlight, max: 100_000)}");
        if (Get(env, "APB_LOG_LEVEL") is { } level)
            hocon.AppendLine($"akka.loglevel = {ParseLogLevel(level)}");
        AppendOps(env, hocon);
        AppendSecurity(env, hocon);
        return ConfigurationFactory.ParseString(hocon.ToString());
    }

    public static string? Get(IReadOnlyDictionary<string, string?> env, string name) =>
        env.TryGetValue(name, out var value) && !string.IsNullOrWhiteSpace(value) ? value.Trim() : null;

    public static int ParsePort(string name, string value, bool allowZero)
    {
        if (!int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port > 65535 || (port == 0 && !allowZero))
            throw new NodeConfigException($"{name}='{value}' is not a TCP port (expected a number 1-65535{(allowZero ? ", or 0" : "")})");
        return port;
    }

    /// <summary>Seeds as "host:port" (the system name is added) or full "akka.tcp://name@host:port".</summary>
    public static IReadOnlyList<string> ParseSeeds(string value, string systemName)
    {
        var seeds = new List<string>();
        foreach (var raw in value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (raw.StartsWith("akka.tcp://", StringComparison.Ordinal) && raw.Contains('@'))
            {
                seeds.Add(raw.TrimEnd('/'));
                continue;
            }
            var colon = raw.LastIndexOf(':');
            if (colon <= 0)
                throw new NodeConfigException($"CLUSTER_SEEDS entry '{raw}' is not host:port or akka.tcp://{systemName}@host:port");
            ParsePort("CLUSTER_SEEDS", raw[(colon + 1)..], allowZero: false);
            seeds.Add($"akka.tcp://{systemName}@{raw}");
        }
        return seeds;
    }

    public static IReadOnlyList<string> ParseRoles(string name, string value)
    {
        var roles = value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(r => r.ToLowerInvariant()).Distinct().ToList();
        foreach (var role in roles)
            if (!NodeRoles.Known.Contains(role))
                throw new NodeConfigException($"{name} has unknown role '{role}' (known roles: {string.Join(", ", NodeRoles.Known)})");
        return roles;
    }

    private static int ParseCount(string name, string value, int max)
    {
        if (!int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n < 1 || n > max)
            throw new NodeConfigException($"{name}='{value}' must be a whole number from 1 to {max}");
        return n;
    }

    /// <summary>A whole number of bytes with an optional unit (KiB, MiB, GiB, TiB), e.g. 512MiB; 0 for none.</summary>
    private static string ParseByteSize(string name, string value)
    {
        var match = System.Text.RegularExpressions.Regex.Match(value, "^([0-9]{1,15})\\s*(B|KiB|MiB|GiB|TiB)?$");
        if (!match.Success)
            throw new NodeConfigException($"{name}='{value}' is not a size (expected a whole number of bytes with an optional unit: B, KiB, MiB, GiB, TiB; e.g. 512MiB)");
        int shift = match.Groups[2].Value switch { "KiB" => 10, "MiB" => 20, "GiB" => 30, "TiB" => 40, _ => 0 };
        var number = long.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
        if (number > long.MaxValue >> shift) throw new NodeConfigException($"{name}='{value}' is too large");
        return (number << shift).ToString(CultureInfo.InvariantCulture);
    }

    private static string ParseDevice(string value)
    {
        var ok = value == "cpu" || (value.StartsWith("cuda", StringComparison.Ordinal) &&
                 (value == "cuda" || (value[4] == ':' && int.TryParse(value[5..], NumberStyles.None, CultureInfo.InvariantCulture, out _))));
        return ok ? value : throw new NodeConfigException($"APB_DEVICE='{value}' is not a device (expected cpu, cuda or cuda:N)");
    }

    private static string ParsePrefillPolicy(string value) => PrefillPolicies.TryParse(value, out var policy) ? policy.Word()
        : throw new NodeConfigException($"APB_PREFILL_POLICY='{value}' is not a prefill policy (expected {PrefillPolicies.Words})");

    private static string ParseLogLevel(string value)
    {
        string[] levels = ["DEBUG", "INFO", "WARNING", "ERROR", "OFF"];
        var upper = value.ToUpperInvariant();
        return levels.Contains(upper) ? upper : throw new NodeConfigException($"APB_LOG_LEVEL='{value}' must be one of {string.Join(", ", levels)}");
    }

    /// <summary>HOCON string literal; JSON escaping is valid HOCON quoting.</summary>
    private static string Quote(string value) => System.Text.Json.JsonSerializer.Serialize(value);
}
