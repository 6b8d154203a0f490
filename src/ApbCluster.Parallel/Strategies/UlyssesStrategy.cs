using ApbCluster.Model.Forward;
using ApbCluster.Model.Attention;
using ApbCluster.Model.Layers;
using ApbCluster.Parallel.Plan;
using static TorchSharp.torch;

namespace ApbCluster.Parallel.Strategies;

/// <summary>
/// DeepSpeed-Ulysses (exact). Each host holds a contiguous sequence block; per layer an all-to-all turns
/// sequence shards of all heads into the whole sequence for H-th of the heads (query heads and their GQA
/// key/value heads together), full causal attention runs there, and a second all-to-all turns the result
/// back into the host's sequence block. Needs query and key/value heads divisible by H.
/// </summary>
public sealed class UlyssesStrategy : PrefillStrategy
{
    public override ParallelMode Mode => ParallelMode.Ulysses;

    protected override Tensor Attend(LayerContext ctx, int layer, Tensor hidden, QkvProjection p)
    {
        var c = ctx.Collective;
        int hosts = c.WorldSize;
        long hq = p.Q.shape[2] / hosts, hkv = p.K.shape[2] / hosts;
        // Chunk j for host j: its query heads, then its key and value heads, side by side along the heads.
        var chunks = Enumerable.Range(0, hosts)
            .Select(j => cat([p.Q.narrow(2, j * hq, hq), p.K.narrow(2, j * hkv, hkv), p.V.narrow(2, j * hkv, hkv)], 2))
            .ToArray();
        Tensor[] received;
        using (ctx.Timer.Measure(PhaseTimer.Passing)) received = c.AllToAll(chunks, $"layer {layer} ulysses scatter heads");
        var all = cat(received, 1); // [B, N, hq + 2hkv, D]: every host's block in rank (= sequence) order
        Tensor outHeads;
        using (ctx.Timer.Measure(PhaseTimer.Attention))
            outHeads = FusedAttention.Attend(all.narrow(2, 0, hq), all.narrow(2, hq, hkv), all.narrow(2, hq + hkv, hkv), causal: true, ctx.Model.Scale).Out;
        long s = p.Q.shape[1];
        var back = Enumerable.Range(0, hosts).Select(i => outHeads.narrow(1, i * s, s).contiguous()).ToArray();
        Tensor[] mine;
        using (ctx.Timer.Measure(PhaseTimer.Passing)) mine = c.AllToAll(back, $"layer {layer} ulysses gather heads");
        return cat(mine, 2); // head groups in rank order = the original head order
    }
}
