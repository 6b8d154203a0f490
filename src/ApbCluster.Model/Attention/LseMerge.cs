using static TorchSharp.torch;

namespace ApbCluster.Model.Attention;

/// <summary>
/// Exact merge of attention results over disjoint key sets by their log-sum-exp (in fp32):
/// lse = logaddexp(lse_a, lse_b); out = out_a*exp(lse_a-lse) + out_b*exp(lse_b-lse).
/// Rows that saw no key at all (lse = -inf) stay zero instead of becoming NaN.
/// Shapes as FusedAttention: out [B, S, H, D], lse [B, H, S].
/// </summary>
public static class LseMerge
{
    public static (Tensor Out, Tensor Lse) Merge((Tensor Out, Tensor Lse) a, (Tensor Out, Tensor Lse) b)
    {
        var lse = logaddexp(a.Lse, b.Lse);
        var wa = Weight(a.Lse, lse);
        var wb = Weight(b.Lse, lse);
        var outDtype = a.Out.dtype;
        var merged = TorchConstants.Plus(a.Out.to(ScalarType.Float32) * wa, b.Out.to(ScalarType.Float32) * wb);
        return (merged.to(outDtype), lse);
    }

    public static (Tensor Out, Tensor Lse) MergeAll(IReadOnlyList<(Tensor Out, Tensor Lse)> parts)
    {
        if (parts.Count == 0) throw new ArgumentException("nothing to merge");
        var acc = parts[0];
        for (int i = 1; i < parts.Count; i++) acc = Merge(acc, parts[i]);
        return acc;
    }

    /// <summary>exp(part - total) as [B, S, H, 1], zero where the part saw no key.</summary>
    private static Tensor Weight(Tensor partLse, Tensor totalLse)
    {
        var w = exp(partLse - totalLse);
        w = where(isneginf(partLse), zeros_like(w), w);
        return w.transpose(1, 2).unsqueeze(-1);
    }
}
