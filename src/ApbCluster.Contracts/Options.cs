namespace ApbCluster.Contracts;

/// <summary>How the context is attended across hosts.</summary>
public enum AttentionMode : byte
{
    Dense = 0,
    Ring = 1,
    Ulysses = 2,
    Star = 3,
    Apb = 4,
}

/// <summary>How apb and star split the document into the hosts' blocks. Default: the router's setting
/// (apb.router.block-split, balanced unless configured otherwise).</summary>
public enum BlockSplitMode : byte
{
    Default = 0,
    /// <summary>About equal prefill cost per host (unequal blocks).</summary>
    Balanced = 1,
    /// <summary>Equal blocks (the paper's layout).</summary>
    Equal = 2,
}

/// <summary>The long context, either raw text (the router tokenizes) or token ids.</summary>
public sealed record QueryContext(string? Text, IReadOnlyList<int>? TokenIds)
{
    public static QueryContext FromText(string text) => new(text, null);
    public static QueryContext FromTokens(IReadOnlyList<int> tokenIds) => new(null, tokenIds);
}

/// <summary>Sampling and stopping. Temperature 0 means greedy; Seed null means random.</summary>
public sealed record GenerationOptions(
    int MaxNewTokens,
    float Temperature,
    float TopP,
    long? Seed,
    IReadOnlyList<string> StopStrings)
{
    public static GenerationOptions Greedy(int maxNewTokens) => new(maxNewTokens, 0f, 1f, null, []);
}

/// <summary>
/// APB knobs: anchor length l_a, passing length l_p (tokens each host sends along the ring
/// per layer) and the compressor that picks those tokens.
/// </summary>
public sealed record ApbOptions(int AnchorLength, int PassingLength, CompressorKind Compressor = CompressorKind.Default);

/// <summary>How a query's prefill attends. Default: the router's setting (apb.router.prefill-attention).</summary>
public enum PrefillAttentionKind : byte
{
    Default = 0,
    Full = 1,
    /// <summary>CritiPrefill: segment-wise criticality pruning of each host's local causal attention (dense, apb, star).</summary>
    CritiPrefill = 2,
}

/// <summary>
/// A query's prefill attention: the kind and CritiPrefill's parameters (null: the router's apb.router.criti-*).
/// The router resolves every null before the hosts see it.
/// </summary>
public sealed record PrefillAttentionOptions(PrefillAttentionKind Kind, int? Budget = null, int? Segment = null, int? Block = null, int? Threshold = null);

/// <summary>How a query's hosts keep their context's K/V for decoding. Default: the router's setting (apb.router.kv).</summary>
public enum KvStoreKind : byte
{
    Default = 0,
    /// <summary>Every key and value, as prefilled.</summary>
    Full = 1,
    /// <summary>ShadowKV: low-rank pre-RoPE keys, chunk landmarks, exact outlier and local chunks; sparse decode.</summary>
    ShadowKv = 2,
}

/// <summary>
/// A query's decode KV store: the kind and ShadowKV's parameters (null: the router's apb.router.shadow-*);
/// <c>ValuesOnHost</c>: the values in host memory instead of on the device. The router resolves every null before the
/// hosts see it.
/// </summary>
public sealed record KvStoreOptions(KvStoreKind Kind, int? Rank = null, int? Chunk = null, int? Budget = null, int? Outliers = null,
    int? Local = null, bool? ValuesOnHost = null);
