using static TorchSharp.torch;

namespace ApbCluster.Model.Attention;

/// <summary>
/// Exact merge of attention results over disjoint key sets by their log-sum-exp:
/// lse = logaddexp(lse_a, lse_b); out = out_a*exp(lse_a-lse) + out_b*exp(lse_b-lse).
/// Rows that saw no key at all (lse = -inf) stay zero instead of becoming NaN.
/// Shapes as FusedAttention: out [B, S, H, D], lse [B, H, S].
/// <para>Merged outputs are fp32, whatever the parts' dtype: a running accumulator (the ring's steps, Phase 2's
/// hosts) then rounds once, when its owner casts the final result, instead of once per merge.</para>
/// </summary>
public static class LseMerge
{
    /// <summary>One merge step; the output is fp32 (cast it once, after the last merge).</summary>
    public static (Tensor Out, Tensor Lse) Merge((Tensor Out, Tensor Lse) a, (Tensor Out, Tensor Lse) b)
    {
        var lse = logaddexp(a.Lse, b.Lse);
        var merged = TorchConstants.Plus(a.Out.to(ScalarType.Float32) * Weight(a.Lse, lse), b.Out.to(ScalarType.Float32) * Weight(b.Lse, lse));
        return (merged, lse);
    }

    /// <summary>Merges every part in order, accumulating in fp32, and rounds once to <paramref name="outDtype"/>
    /// (null: the first part's dtype).</summary>
    public static (Tensor Out, Tensor Lse) MergeAll(IReadOnlyList<(Tensor Out, Tensor Lse)> parts, ScalarType? outDtype = null)
    {
        if (parts.Count == 0) throw new ArgumentException("nothing to merge");
        var dtype = outDtype ?? parts[0].Out.dtype;
        var acc = parts[0];
        for (int i = 1; i < parts.Count; i++) acc = Merge(acc, parts[i]);
        return (acc.Out.to(dtype), acc.Lse);
    }

    /// <summary>exp(part - total) as [B, S, H, 1], zero where the part saw no key.</summary>
    private static Tensor Weight(Tensor partLse, Tensor totalLse)
    {
        var w = exp(partLse - totalLse);
        w = where(isneginf(partLse), zeros_like(w), w);
        return w.transpose(1, 2).unsqueeze(-1);
    }
}
