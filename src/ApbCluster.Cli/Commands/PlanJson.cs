using System.Text.Json.Serialization;
using ApbCluster.Contracts;
using ApbCluster.Parallel.Compression;
using ApbCluster.Parallel.Plan;

namespace ApbCluster.Cli.Commands;

/// <summary>The plan as `apb ask --json` prints it, the same fields whether virtual hosts or a cluster ran the query.</summary>
internal sealed record PlanJson(
    [property: JsonPropertyName("mode")] string Mode,
    [property: JsonPropertyName("hosts")] int Hosts,
    [property: JsonPropertyName("host_ids")] IReadOnlyList<string> HostIds,
    [property: JsonPropertyName("document_tokens")] int DocumentTokens,
    [property: JsonPropertyName("question_tokens")] int QuestionTokens,
    [property: JsonPropertyName("split")] string Split,
    [property: JsonPropertyName("blocks")] IReadOnlyList<int> Blocks,
    [property: JsonPropertyName("anchor")] int Anchor,
    [property: JsonPropertyName("passing")] int Passing,
    [property: JsonPropertyName("padding")] int Padding,
    [property: JsonPropertyName("compressor")] string? Compressor)
{
    public static PlanJson From(ApbPlan p, ICompressor? compressor) => new(
        p.Mode.ToString().ToLowerInvariant(), p.Hosts, Enumerable.Range(0, p.Hosts).Select(h => $"virtual-{h}").ToArray(),
        p.DocumentLength, p.QuestionLength, p.Split.ToString().ToLowerInvariant(), p.Blocks.Select(b => b.Length).ToArray(),
        p.AnchorLength, p.PassingLength, p.Padding, CompressorName(compressor));

    public static PlanJson From(QueryPlanSummary p) => new(
        p.Mode.ToString().ToLowerInvariant(), p.HostsInRingOrder.Count, p.HostsInRingOrder, p.DocumentTokens, p.QuestionTokens,
        p.Split == BlockSplitMode.Balanced ? "balanced" : "equal", p.BlockLengths, p.AnchorLength, p.PassingLength,
        p.BlockLengths.Sum() - p.DocumentTokens, p.Compressor is { } c ? CompressorNames.Name(c) : null);

    /// <summary>The compressor's protocol name (as the cluster's plan names it).</summary>
    public static string? CompressorName(ICompressor? c) => c switch
    {
        null => null,
        QueryAwareCompressor => CompressorNames.Name(CompressorKind.QueryAware),
        RetainingHeadCompressor => CompressorNames.Name(CompressorKind.RetainingHeads),
        RandomCompressor => CompressorNames.Name(CompressorKind.Random),
        _ => c.GetType().Name,
    };
}
