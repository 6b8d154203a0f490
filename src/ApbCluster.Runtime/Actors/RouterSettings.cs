using ApbCluster.Engine;
using HoconConfig = Akka.Configuration.Config;

namespace ApbCluster.Runtime.Actors;

/// <summary>The router's knobs (apb.router.*, apb.data-plane.collective-timeout); see docs/configuration.md.</summary>
public sealed record RouterSettings
{
    /// <summary>Queries waiting beyond the running ones; a full queue answers RouterBusy.</summary>
    public int QueueCapacity { get; init; } = 16;

    /// <summary>Queries running at once (admitted by the hosts' free KV memory); keep it at most the hosts'
    /// apb.gpu-host.max-queries, beyond which a host holds the extra ranks until one of its queries ends.</summary>
    public int MaxInFlight { get; init; } = 4;

    /// <summary>Wall-clock bound on a running query (plan to last token).</summary>
    public TimeSpan QueryTimeout { get; init; } = TimeSpan.FromSeconds(120);

    /// <summary>Deadline of every data-plane receive (and of connecting the mesh).</summary>
    public TimeSpan CollectiveTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>After a host reports a data-plane failure, how long to wait for the others' reports before blaming.</summary>
    public TimeSpan BlameGrace { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>A router that just started (after a hand-over its registry is empty until the hosts re-register) keeps
    /// queries queued this long for a first host instead of failing them with "no GPU hosts".</summary>
    public TimeSpan HostWait { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Refuse absurd generation lengths up front.</summary>
    public int MaxNewTokensLimit { get; init; } = 8192;

    /// <summary>Tokenizer and model limits; null = the router cannot tokenize text (callers send ids).</summary>
    public ITokenCodec? Codec { get; init; }

    public Model.Config.ModelConfig? Model { get; init; }

    /// <summary>How apb and star split the document when a query leaves it to the router (apb.router.block-split).</summary>
    public Parallel.Plan.BlockSplit DefaultSplit { get; init; } = Parallel.Plan.BlockSplit.Balanced;

    /// <summary>Whether queries that leave it to the router prefill with CritiPrefill (apb.router.prefill-attention).</summary>
    public bool CritiPrefillByDefault { get; init; }

    /// <summary>CritiPrefill's parameters where a query leaves them to the router (apb.router.criti-*).</summary>
    public Parallel.Kernels.CritiPrefillOptions CritiPrefill { get; init; } = new();

    /// <summary>Whether queries that leave it to the router decode from ShadowKV stores (apb.router.kv).</summary>
    public bool ShadowKvByDefault { get; init; }

    /// <summary>ShadowKV's parameters where a query leaves them to the router (apb.router.shadow-*).</summary>
    public ApbCluster.Model.KvStores.ShadowKvOptions ShadowKv { get; init; } = new();

    /// <summary>The join secret(s) a host must prove before it is registered; <see cref="JoinSettings.Insecure"/> registers any.</summary>
    public Security.JoinSettings Join { get; init; } = Security.JoinSettings.Insecure;

    /// <summary>The router's model, named in refusals of hosts that serve another.</summary>
    public string ModelName { get; init; } = "";

    /// <summary>The router's <see cref="Engine.ModelFingerprint"/>; hosts with another are refused. Null: no model, no check.</summary>
    public string? ModelFingerprint { get; init; }

    public static RouterSettings From(HoconConfig c, ModelSpec? model) => new()
    {
        ShadowKvByDefault = c.GetString("apb.router.kv", "full") switch
        {
            "full" => false,
            "shadowkv" => true,
            var v => throw new Config.NodeConfigException($"apb.router.kv = '{v}': expected full or shadowkv."),
        },
        ShadowKv = ShadowKvFrom(c),
        Join = Security.JoinSettings.Read(c),
        ModelName = model?.Name ?? "",
        ModelFingerprint = model is null ? null : Engine.ModelFingerprint.Of(model),
        CritiPrefillByDefault = c.GetString("apb.router.prefill-attention", "full") switch
        {
            "full" => false,
            "critiprefill" => true,
            var v => throw new Config.NodeConfigException($"apb.router.prefill-attention = '{v}': expected full or critiprefill."),
        },
        CritiPrefill = CritiPrefillFrom(c),
        QueueCapacity = c.GetInt("apb.router.queue-capacity", 16),
        MaxInFlight = c.GetInt("apb.router.max-in-flight", 4) is var m && m >= 1 ? m
            : throw new Config.NodeConfigException($"apb.router.max-in-flight = {m}: must be at least 1"),
        QueryTimeout = c.GetTimeSpan("apb.router.query-timeout", TimeSpan.FromSeconds(120)),
        CollectiveTimeout = c.GetTimeSpan("apb.data-plane.collective-timeout", TimeSpan.FromSeconds(10)),
        BlameGrace = c.GetTimeSpan("apb.router.blame-grace", TimeSpan.FromSeconds(1)),
        MaxNewTokensLimit = c.GetInt("apb.router.max-new-tokens-limit", 8192),
        HostWait = c.GetTimeSpan("apb.router.host-wait", TimeSpan.FromSeconds(5)),
        Codec = model is null ? null : ITokenCodec.For(model),
        Model = model?.Config(),
        DefaultSplit = c.GetString("apb.router.block-split", "balanced") switch
        {
            "balanced" => Parallel.Plan.BlockSplit.Balanced,
            "equal" => Parallel.Plan.BlockSplit.Equal,
            var v => throw new Config.NodeConfigException($"apb.router.block-split = '{v}': expected balanced or equal."),
        },
    };

    private static ApbCluster.Model.KvStores.ShadowKvOptions ShadowKvFrom(HoconConfig c)
    {
        var d = new ApbCluster.Model.KvStores.ShadowKvOptions();
        var o = d with
        {
            Rank = c.GetInt("apb.router.shadow-rank", d.Rank),
            Chunk = c.GetInt("apb.router.shadow-chunk", d.Chunk),
            Budget = c.GetInt("apb.router.shadow-budget", d.Budget),
            Outliers = c.GetInt("apb.router.shadow-outliers", d.Outliers),
            Local = c.GetInt("apb.router.shadow-local", d.Local),
            Values = c.GetString("apb.router.shadow-values", "device") switch
            {
                "device" => ApbCluster.Model.KvStores.ShadowKvValues.Device,
                "host" => ApbCluster.Model.KvStores.ShadowKvValues.Host,
                var v => throw new Config.NodeConfigException($"apb.router.shadow-values = '{v}': expected device or host."),
            },
        };
        try { return o.Validate("apb.router.shadow-"); }
        catch (ApbCluster.Model.KvStores.ShadowKvOptionsException e) { throw new Config.NodeConfigException(e.Message); }
    }

    private static Parallel.Kernels.CritiPrefillOptions CritiPrefillFrom(HoconConfig c)
    {
        var d = new Parallel.Kernels.CritiPrefillOptions();
        var o = d with
        {
            Budget = c.GetInt("apb.router.criti-budget", d.Budget),
            Segment = c.GetInt("apb.router.criti-segment", d.Segment),
            Block = c.GetInt("apb.router.criti-block", d.Block),
            Threshold = c.GetInt("apb.router.criti-threshold", d.Threshold),
        };
        try { return o.Validate("apb.router.criti-"); }
        catch (Parallel.Kernels.CritiPrefillOptionsException e) { throw new Config.NodeConfigException(e.Message); }
    }
}
