using ApbCluster.Model.Forward;
using static TorchSharp.torch;

namespace ApbCluster.Parallel.Strategies;

/// <summary>
/// What a host keeps after prefill: post-RoPE K and V of its own real document tokens for every layer,
/// [B, S_shard, n_kv, D] (anchor, passing and padding dropped), at global <see cref="Positions"/>.
/// </summary>
public sealed class HostShard : IDisposable
{
    public required int Host { get; init; }
    public required long[] Positions { get; init; }
    public required Tensor[] Keys { get; init; }
    public required Tensor[] Values { get; init; }
    /// <summary>Final hidden states of the shard's tokens (before the final norm), when asked for.</summary>
    public Tensor? Hidden { get; init; }
    public required PhaseTimer Timings { get; init; }

    public int Length => Positions.Length;

    public void Dispose()
    {
        foreach (var t in Keys.Concat(Values)) t.Dispose();
        Hidden?.Dispose();
    }
}

/// <summary>One request's inputs. Batch 1: the plan describes a single document.</summary>
public sealed record PrefillRequest(long[] Document, long[] Question)
{
    public long PadId { get; init; }
    /// <summary>Keep the final hidden states in the shard (tests, debugging).</summary>
    public bool KeepHidden { get; init; }
    /// <summary>Called after each prefill layer with (layer 1-based, layers), on the host's thread: progress
    /// reports, and a place to cancel (an exception thrown here aborts the prefill).</summary>
    public Action<int, int>? OnLayer { get; init; }
    /// <summary>The prefill's attention: null is full attention; options prune each host's local causal part with
    /// CritiPrefill (dense, apb and star; decode is unchanged).</summary>
    public Kernels.CritiPrefillOptions? CritiPrefill { get; init; }
}

/// <summary>The rows a host runs through the layers: a prefix (anchor, dropped at the end) then its local tokens.</summary>
public sealed record HostRows(long[] Ids, long[] Positions, int Prefix)
{
    public int Local => Ids.Length - Prefix;
}
