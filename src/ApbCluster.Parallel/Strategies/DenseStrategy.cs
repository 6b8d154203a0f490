using ApbCluster.Model.Attention;
using ApbCluster.Model.Layers;
using ApbCluster.Parallel.Plan;

namespace ApbCluster.Parallel.Strategies;

/// <summary>One host, full causal attention (the reference every exact strategy must match).</summary>
public sealed class DenseStrategy : PrefillStrategy
{
    public override ParallelMode Mode => ParallelMode.Dense;

    protected override TorchSharp.torch.Tensor Attend(LayerContext ctx, int layer, TorchSharp.torch.Tensor hidden, QkvProjection p)
    {
        using var _ = ctx.Timer.Measure(PhaseTimer.Attention);
        return FusedAttention.Attend(p.Q, p.K, p.V, causal: true, ctx.Model.Scale).Out;
    }
}
