using ApbCluster.Parallel.Plan;
using static TorchSharp.torch;

namespace ApbCluster.Parallel.Tests.Reference;

/// <summary>What a reference computes for one host's real (non-padding) local rows, float64:
/// final hidden [S, hidden] and per layer post-RoPE K and V [S, n_kv, D], at global <see cref="Positions"/>.</summary>
internal sealed record HostReference(long[] Positions, Tensor Hidden, Tensor[] Keys, Tensor[] Values)
{
    /// <summary>Host h's local rows from the plan's block: ids (padding positions get <paramref name="padId"/>) and positions.</summary>
    public static (long[] Ids, long[] Positions) LocalRows(ApbPlan plan, int host, long[] document, long padId = 0)
    {
        var b = plan.Blocks[host];
        var positions = Enumerable.Range(b.Start, b.Length).Select(p => (long)p).ToArray();
        return (positions.Select(p => p < document.Length ? document[p] : padId).ToArray(), positions);
    }

    /// <summary>Keeps rows [from, from + count) whose position is a real document position.</summary>
    public static HostReference Keep(long[] positions, int documentLength, int from, Tensor hidden, Tensor[] keys, Tensor[] values)
    {
        var rows = Enumerable.Range(0, positions.Length).Where(r => r >= from && positions[r] < documentLength).ToArray();
        var idx = tensor(rows.Select(r => (long)r).ToArray());
        return new HostReference(rows.Select(r => positions[r]).ToArray(), hidden.index_select(0, idx),
            keys.Select(k => k.index_select(0, idx)).ToArray(), values.Select(v => v.index_select(0, idx)).ToArray());
    }
}
