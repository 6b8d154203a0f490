using ApbCluster.Model.Forward;
using ApbCluster.Model.Attention;
using ApbCluster.Model.Layers;
using ApbCluster.Parallel.Collectives;
using ApbCluster.Parallel.Plan;
using static TorchSharp.torch;

namespace ApbCluster.Parallel.Strategies;

/// <summary>
/// Ring attention (exact). Host h holds zigzag chunks h and 2H-1-h (equal length c), so every host does
/// the same causal work. Per layer its K/V travel around the ring for H steps; at each step the host
/// attends its two query chunks to the visiting two key chunks: earlier chunk -> no mask, same chunk ->
/// causal, later chunk -> skipped. Partial results are merged by log-sum-exp.
/// </summary>
public sealed class RingStrategy : PrefillStrategy
{
    public override ParallelMode Mode => ParallelMode.Ring;

    protected override Tensor Attend(LayerContext ctx, int layer, Tensor hidden, QkvProjection p)
    {
        var c = ctx.Collective;
        int hosts = c.WorldSize, host = c.Rank;
        long chunk = p.Q.shape[1] / 2;
        double scale = ctx.Model.Scale;
        int[] mine = [host, 2 * hosts - 1 - host];
        var acc = new (Tensor Out, Tensor Lse)?[2];
        var kv = cat([p.K, p.V], -1); // one tensor per ring step
        for (int step = 0; step < hosts; step++)
        {
            int source = ((host - step) % hosts + hosts) % hosts;
            int[] theirs = [source, 2 * hosts - 1 - source];
            using (ctx.Timer.Measure(PhaseTimer.Attention))
                for (int qi = 0; qi < 2; qi++)
                    for (int ki = 0; ki < 2; ki++)
                    {
                        if (theirs[ki] > mine[qi]) continue; // a later chunk: fully masked
                        var kvChunk = kv.narrow(1, ki * chunk, chunk);
                        long d = kvChunk.shape[^1] / 2;
                        var part = FusedAttention.Attend(p.Q.narrow(1, qi * chunk, chunk), kvChunk.narrow(-1, 0, d), kvChunk.narrow(-1, d, d),
                            causal: theirs[ki] == mine[qi], scale);
                        acc[qi] = acc[qi] is { } a ? LseMerge.Merge(a, part) : part;
                    }
            if (step < hosts - 1)
                using (ctx.Timer.Measure(PhaseTimer.Passing))
                {
                    var next = c.SendReceive(kv, c.NextRank(), c.PreviousRank(), $"layer {layer} ring step {step}");
                    if (step > 0) kv.Dispose();
                    kv = next;
                }
        }
        // The accumulators stay fp32 across the H steps' merges: one rounding here, not one per step.
        return cat([acc[0]!.Value.Out.to(p.Q.dtype), acc[1]!.Value.Out.to(p.Q.dtype)], 1);
    }
}
