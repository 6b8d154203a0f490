namespace ApbCluster.Contracts;

/// <summary>How an APB host picks the l_p passing tokens of its block. Default: the training-free query-aware
/// compressor, which works for any model.</summary>
public enum CompressorKind : byte
{
    Default = 0,
    /// <summary>Mean q.k of the question's queries against each block key (training-free).</summary>
    QueryAware = 1,
    /// <summary>Seeded random scores (an ablation, and lossless when every token passes).</summary>
    Random = 2,
    /// <summary>Locret's trained retaining heads (retaining_heads.safetensors beside the model).</summary>
    RetainingHeads = 3,
}

/// <summary>
/// The one spelling of each compressor in text (HTTP, logs, plan summaries), so every edge parses and names them alike.
/// </summary>
public static class CompressorNames
{
    /// <summary>The kind a query without a choice gets.</summary>
    public const CompressorKind Default = CompressorKind.QueryAware;

    /// <summary>Every kind a caller may name, in its text spelling.</summary>
    public static readonly IReadOnlyList<string> Known = ["query-aware", "random", "retaining-heads"];

    /// <summary>The kind that runs: <see cref="CompressorKind.Default"/> resolved.</summary>
    public static CompressorKind Resolve(CompressorKind kind) => kind == CompressorKind.Default ? Default : kind;

    public static string Name(CompressorKind kind) => Resolve(kind) switch
    {
        CompressorKind.QueryAware => "query-aware",
        CompressorKind.Random => "random",
        CompressorKind.RetainingHeads => "retaining-heads",
        _ => $"unknown compressor {(byte)kind}",
    };

    public static bool TryParse(string? text, out CompressorKind kind)
    {
        kind = text switch
        {
            null or "" => CompressorKind.Default,
            "query-aware" => CompressorKind.QueryAware,
            "random" => CompressorKind.Random,
            "retaining-heads" => CompressorKind.RetainingHeads,
            _ => (CompressorKind)byte.MaxValue,
        };
        return Enum.IsDefined(kind);
    }
}
