using System.Collections;
using System.Text;
using Akka.Configuration;
using ApbCluster.Parallel.Serving;
using HoconConfig = Akka.Configuration.Config;

namespace ApbCluster.Runtime.Config;

/// <summary>
/// Loads a node's configuration: embedded baseline (hocon/apb-baseline.hocon) &lt; optional
/// file (--config or APB_CONFIG) &lt; environment overlay. Validates the result and keeps
/// a description of where it came from for the boot banner.
/// </summary>
public sealed class NodeConfig
{
    private const string BaselineResource = "ApbCluster.Runtime.apb-baseline.hocon";

    private NodeConfig(HoconConfig hocon, NodeSettings settings, IReadOnlyList<string> sources)
    {
        Hocon = hocon;
        Settings = settings;
        Sources = sources;
        Ops = OpsSettings.Read(hocon);
        Join = Security.JoinSettings.Read(hocon);
    }

    /// <summary>The join secret (apb.cluster.*); whether one is required is checked when the node starts.</summary>
    public Security.JoinSettings Join { get; }

    /// <summary>Metrics/HTTP endpoints and request limits.</summary>
    public OpsSettings Ops { get; }

    public HoconConfig Hocon { get; }

    public NodeSettings Settings { get; }

    /// <summary>Where values came from, highest precedence first.</summary>
    public IReadOnlyList<string> Sources { get; }

    public static NodeConfig FromProcessEnvironment(string? configFile = null)
    {
        var env = Environment.GetEnvironmentVariables().Cast<DictionaryEntry>()
            .ToDictionary(e => (string)e.Key, e => (string?)e.Value);
        return Load(env, configFile);
    }

    /// <param name="env">Environment variables (injected so tests need not touch the process).</param>
    /// <param name="configFile">Overrides APB_CONFIG when given.</param>
    /// <param name="extraHocon">Lowest-precedence-but-above-file test or embedding overrides.</param>
    /// <param name="discoverAddress">This machine's address for wildcard binds (tests inject it; see AdvertisedAddress).</param>
    public static NodeConfig Load(IReadOnlyDictionary<string, string?> env, string? configFile = null, HoconConfig? extraHocon = null,
        Func<string?>? discoverAddress = null)
    {
        var sources = new List<string>();
        var systemName = EnvironmentOverlay.Get(env, "APB_SYSTEM_NAME") ?? "apb";
        var config = EnvironmentOverlay.Build(env, systemName);
        var setVariables = EnvironmentOverlay.Variables.Where(v => EnvironmentOverlay.Get(env, v) is not null).ToList();
        sources.Add(setVariables.Count > 0 ? $"environment ({string.Join(", ", setVariables)})" : "environment (none set)");

        if (extraHocon is not null)
        {
            config = config.WithFallback(extraHocon);
            sources.Add("in-code overrides");
        }

        var file = configFile ?? EnvironmentOverlay.Get(env, "APB_CONFIG");
        if (file is not null)
        {
            if (!File.Exists(file))
                throw new NodeConfigException($"config file '{file}' (from {(configFile is null ? "APB_CONFIG" : "--config")}) does not exist");
            try
            {
                config = config.WithFallback(ConfigurationFactory.ParseString(File.ReadAllText(file)));
            }
            catch (Exception e) when (e is not NodeConfigException)
            {
                throw new NodeConfigException($"config file '{file}' is not valid HOCON: {e.Message}");
            }
            sources.Add($"file {Path.GetFullPath(file)}");
        }

        config = config.WithFallback(ConfigurationFactory.ParseString(ReadBaseline()));
        sources.Add("embedded hocon/apb-baseline.hocon");
        config = AdvertisedAddress.Apply(config, discoverAddress);
        return new NodeConfig(config, ReadSettings(config, systemName), sources);
    }

    public static string ReadBaseline()
    {
        using var stream = typeof(NodeConfig).Assembly.GetManifestResourceStream(BaselineResource)
            ?? throw new InvalidOperationException($"embedded resource {BaselineResource} is missing (build error)");
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return reader.ReadToEnd();
    }

    /// <summary>The boot banner: effective address, roles, seeds and config sources.</summary>
    public string Describe()
    {
        var s = Settings;
        var sb = new StringBuilder();
        sb.AppendLine($"apb-node address : {s.SelfAddress} (bind {s.Hostname}:{s.Port})");
        sb.AppendLine($"apb-node roles   : {(s.Roles.Count > 0 ? string.Join(", ", s.Roles) : "(none)")}");
        sb.AppendLine($"apb-node seeds   : {(s.Seeds.Count > 0 ? string.Join(", ", s.Seeds) : "(none: waiting for `cluster join`)")}");
        sb.AppendLine($"apb-node admin   : {(s.AdminPort == 0 ? "disabled" : $"{s.AdminHost}:{s.AdminPort}")}");
        sb.AppendLine($"apb-node metrics : {(Ops.MetricsPort == 0 ? "disabled" : $"http://{Ops.MetricsHost}:{Ops.MetricsPort}/metrics")}");
        if (s.HasRole(NodeRoles.GpuHost))
            sb.AppendLine($"apb-node gpu-host: {s.VirtualHosts} host(s) on {s.Device}, model '{(s.Model.Length > 0 ? s.Model : s.ModelDir)}', data port {(s.DataPort == 0 ? "ephemeral" : s.DataPort)}, prefill policy {s.PrefillPolicy.Word()}");
        sb.AppendLine($"apb-node join    : {(Join.Secret is not null ? $"join secret set{(Join.Previous is not null ? " (previous one accepted too)" : "")}" : Join.AllowInsecure ? "INSECURE: no join secret, any host may register (apb.cluster.allow-insecure-join)" : "no join secret (the node will not start)")}");
        sb.Append($"apb-node config  : {string.Join(" > ", Sources)}");
        if (SeedWarning() is { } warning) sb.Append($"\napb-node WARNING : {warning}");
        return sb.ToString();
    }

    /// <summary>
    /// The first seed forms a new cluster when no other seed answers. A node whose seeds name only itself therefore
    /// starts a cluster of its own after a restart, even while the rest of the old cluster still runs (the hosts never
    /// come back to it): every node should list every router, and some long-lived hosts, as seeds.
    /// </summary>
    public string? SeedWarning()
    {
        var s = Settings;
        if (s.Seeds.Count != 1 || !SameNode(s.Seeds[0], s.SelfAddress)) return null;
        return "CLUSTER_SEEDS names only this node: restarted while the rest of the cluster runs, it forms a new cluster of " +
               "its own and the other nodes never return to it. List every router and some gpu hosts in CLUSTER_SEEDS, " +
               "the same list on every node (docs/operations.md, \"Seeds\").";
    }

    private static bool SameNode(string seed, string self) =>
        string.Equals(seed.TrimEnd('/'), self, StringComparison.OrdinalIgnoreCase);

    private static int Positive(int value, string key) =>
        value >= 1 ? value : throw new NodeConfigException($"{key} = {value}: must be at least 1");

    /// <summary>A byte size (e.g. 512MiB, 12GiB); 0 or absent: no budget.</summary>
    private static long ByteSizeOf(HoconConfig c, string key)
    {
        long? bytes;
        try { bytes = c.GetByteSize(key); }
        catch (Exception e) when (e is FormatException or OverflowException or Akka.Configuration.ConfigurationException)
        {
            throw new NodeConfigException($"{key} = '{c.GetString(key)}' is not a size in bytes (e.g. 512MiB, 12GiB, or 0 for none)");
        }
        return bytes is null or 0 ? 0 : bytes > 0 ? bytes.Value
            : throw new NodeConfigException($"{key} = {bytes}: must not be negative");
    }

    private static PrefillPolicy PrefillPolicyOf(HoconConfig c)
    {
        var word = c.GetString("apb.gpu-host.prefill-policy", "concurrent");
        return PrefillPolicies.TryParse(word, out var policy) ? policy
            : throw new NodeConfigException($"apb.gpu-host.prefill-policy = '{word}': expected {PrefillPolicies.Words}");
    }

    private static NodeSettings ReadSettings(HoconConfig c, string systemName)
    {
        var hostname = c.GetString("akka.remote.dot-netty.tcp.hostname", "127.0.0.1");
        var publicHostname = c.GetString("akka.remote.dot-netty.tcp.public-hostname", "");
        var roles = c.GetStringList("akka.cluster.roles", []).ToList();
        foreach (var role in roles)
            if (!NodeRoles.Known.Contains(role))
                throw new NodeConfigException($"akka.cluster.roles has unknown role '{role}' (known roles: {string.Join(", ", NodeRoles.Known)})");
        return new NodeSettings(
            SystemName: systemName,
            Hostname: hostname,
            PublicHostname: string.IsNullOrEmpty(publicHostname) ? hostname : publicHostname,
            Port: c.GetInt("akka.remote.dot-netty.tcp.port", 4053),
            Seeds: c.GetStringList("akka.cluster.seed-nodes", []).ToList(),
            Roles: roles,
            AdminHost: c.GetString("apb.admin.host", "127.0.0.1"),
            AdminPort: c.GetInt("apb.admin.port", 9110),
            AdminToken: c.GetString("apb.admin.token", ""),
            VirtualHosts: c.GetInt("apb.gpu-host.virtual-hosts", 1),
            Device: c.GetString("apb.gpu-host.device", "cpu"),
            ModelDir: c.GetString("apb.gpu-host.model-dir", ""),
            RegisterInterval: c.GetTimeSpan("apb.gpu-host.register-interval", TimeSpan.FromSeconds(2)),
            Model: c.GetString("apb.model", ""),
            DataPort: c.GetInt("apb.data-plane.port", 0),
            TestLayerDelay: c.GetTimeSpan("apb.gpu-host.test-layer-delay", TimeSpan.Zero),
            MaxQueries: Positive(c.GetInt("apb.gpu-host.max-queries", 4), "apb.gpu-host.max-queries"),
            KvMemory: ByteSizeOf(c, "apb.gpu-host.kv-memory"),
            BatchDecode: c.GetBoolean("apb.gpu-host.batch-decode", false),
            PrefillPolicy: PrefillPolicyOf(c),
            HostKvMemory: ByteSizeOf(c, "apb.gpu-host.host-kv-memory"));
    }
}
