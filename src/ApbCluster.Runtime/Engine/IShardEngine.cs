using ApbCluster.Contracts;

namespace ApbCluster.Runtime.Engine;

/// <summary>
/// The seam where the model maths plugs into a GpuHost: one engine owns one device and the
/// KV cache of its shard. GpuHost calls it off the actor thread and never touches tensors.
/// The request shapes are a first cut; the maths side may refine them.
/// </summary>
public interface IShardEngine : IDisposable
{
    /// <summary>"cpu", "cuda:0", ...</summary>
    string Device { get; }

    /// <summary>Loaded model's name, or "" when none.</summary>
    string ModelName { get; }

    DeviceMemory Memory();

    /// <summary>Bytes held by KV caches of all queries on this shard.</summary>
    long KvBytes { get; }

    /// <summary>Phase 1 for this host's block; reports each finished layer (1-based).</summary>
    Task<ShardPrefillResult> PrefillAsync(ShardPrefillRequest request, IProgress<int> layerDone, CancellationToken ct);

    /// <summary>Phase 2: one decode step over this shard's KV.</summary>
    Task<DecodeStepResult> DecodeStepAsync(DecodeStepRequest request, CancellationToken ct);

    /// <summary>Drop every tensor of the query (done, failed or cancelled). Idempotent.</summary>
    void FreeKv(string queryId);
}

public readonly record struct DeviceMemory(long UsedBytes, long TotalBytes);

/// <summary>This host's share of a query: anchor tokens, its context block and its ring position.</summary>
public sealed record ShardPrefillRequest(
    string QueryId,
    IReadOnlyList<int> AnchorTokens,
    IReadOnlyList<int> BlockTokens,
    int BlockStart,
    int HostIndex,
    int HostCount,
    AttentionMode Mode,
    ApbOptions? Apb);

public sealed record ShardPrefillResult(string QueryId, int Layers, long KvBytes);

/// <summary>New tokens (question first, then each generated token); the last host samples.</summary>
public sealed record DecodeStepRequest(string QueryId, IReadOnlyList<int> NewTokens, bool IsLastHost, GenerationOptions Generation);

/// <summary>NextToken is set by the last host only.</summary>
public sealed record DecodeStepResult(string QueryId, int? NextToken);
