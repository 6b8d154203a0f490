using ApbCluster.Model.Forward;
using ApbCluster.Model.Attention;
using ApbCluster.Model.Layers;
using ApbCluster.Parallel.Kernels;
using ApbCluster.Parallel.Plan;
using static TorchSharp.torch;

namespace ApbCluster.Parallel.Strategies;

/// <summary>One host, full causal attention (the reference every exact strategy must match), or CritiPrefill's
/// pruned causal attention when the request asks for it.</summary>
public sealed class DenseStrategy : PrefillStrategy
{
    public override ParallelMode Mode => ParallelMode.Dense;
    public override bool SupportsCritiPrefill => true;

    protected override Tensor Attend(LayerContext ctx, int layer, Tensor hidden, QkvProjection p)
    {
        var selection = ctx.SelectCritical(layer, p.Q, p.K, ctx.Rows.Positions.FirstOrDefault());
        using var _ = ctx.Timer.Measure(PhaseTimer.Attention);
        if (selection is null) return FusedAttention.Attend(p.Q, p.K, p.V, causal: true, ctx.Model.Scale).Out;
        return CritiPrefillAttention.Attend(p.Q, p.K, p.V, selection, ctx.Model.Scale).Out.to(p.Q.dtype); // fp32, rounded once
    }
}
