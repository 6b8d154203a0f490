using ApbCluster.Model;
using ApbCluster.Model.Attention;
using TorchSharp;
using static TorchSharp.torch;

namespace ApbCluster.Parallel.Kernels;

/// <summary>
/// Causal attention with CritiPrefill's pruning (spec "Attention"), from fused calls merged by log-sum-exp,
/// never a dense mask and never a loop over segments:
///   rows before the pruned run and the last segment: full causal (one call each);
///   pruned segments: one gather of every (segment, KV head)'s chosen blocks, one unmasked call over them with
///   batch = segments x KV heads and heads = the GQA group, one causal call over each segment's own rows
///   (batch = segments), one merge. Memory O(segments x budget).
/// q [1, rows, Hq, D]; k, v [1, rows, Hkv, D] (the causal keys of these rows). Returns out [1, rows, Hq, D] in
/// fp32 (cast it once, after any further merge) and lse [1, Hq, rows] fp32.
/// </summary>
public static class CritiPrefillAttention
{
    public static (Tensor Out, Tensor Lse) Attend(Tensor q, Tensor k, Tensor v, CritiPrefillSelection selection, double scale)
    {
        var layout = selection.Layout;
        if (q.shape[1] != layout.Rows) throw new ArgumentException($"the selection is for {layout.Rows} rows, not {q.shape[1]}.");
        if (!layout.PrunesAnything)
        {
            var (o, l) = FusedAttention.Attend(q, k, v, causal: true, scale);
            return (o.to(ScalarType.Float32), l);
        }
        using var scope = NewDisposeScope();
        int start = layout.PrunedStart, rows = layout.PrunedRows, tail = layout.TailStart;
        var head = FusedAttention.Attend(q.narrow(1, 0, start), k.narrow(1, 0, start), v.narrow(1, 0, start), causal: true, scale);
        var pruned = Pruned(q.narrow(1, start, rows), k, v, selection, scale);
        // The last segment sees every key before it and itself causally (bottom-right aligned).
        var last = FusedAttention.Attend(q.narrow(1, tail, layout.Rows - tail), k, v, causal: true, scale);
        var outT = cat([head.Out.to(ScalarType.Float32), pruned.Out, last.Out.to(ScalarType.Float32)], 1);
        var lse = cat([head.Lse, pruned.Lse, last.Lse], 2);
        return (outT.MoveToOuterDisposeScope(), lse.MoveToOuterDisposeScope());
    }

    /// <summary>The pruned run's rows [1, M*S, Hq, D] over their chosen blocks and their own segment.</summary>
    private static (Tensor Out, Tensor Lse) Pruned(Tensor q, Tensor k, Tensor v, CritiPrefillSelection selection, double scale)
    {
        var layout = selection.Layout;
        long rowsAll = k.shape[1], hq = q.shape[2], hkv = k.shape[2], d = q.shape[3], g = hq / hkv;
        long m = layout.PrunedSegments, seg = layout.Segment, bl = layout.Block, keep = layout.BudgetBlocks * bl;

        // One gather for all (segment, KV head) pairs: token t of head h is row t*Hkv + h of K viewed [rows*Hkv, D].
        using var blockLength = bl.ToScalar();
        using var heads = hkv.ToScalar();
        var within = TorchConstants.Positions(0, bl, q.device);
        var tokens = selection.Blocks!.mul(blockLength).unsqueeze(-1).add(within, TorchConstants.One).view(m, hkv, keep); // [M, Hkv, keep]
        var rowIds = tokens.mul(heads).add(TorchConstants.Positions(0, hkv, q.device).view(1, hkv, 1), TorchConstants.One).view(-1);
        var kSel = k.reshape(rowsAll * hkv, d).index_select(0, rowIds).view(m * hkv, keep, 1, d);
        var vSel = v.reshape(rowsAll * hkv, d).index_select(0, rowIds).view(m * hkv, keep, 1, d);

        // Queries regrouped so each batch entry is one (segment, KV head) with its GQA group as heads.
        var qGroups = q.reshape(m, seg, hkv, g, d).permute(0, 2, 1, 3, 4).reshape(m * hkv, seg, g, d);
        var chosen = FusedAttention.Attend(qGroups, kSel, vSel, causal: false, scale);
        var chosenOut = chosen.Out.view(m, hkv, seg, g, d).permute(0, 2, 1, 3, 4).reshape(m, seg, hq, d);
        var chosenLse = chosen.Lse.reshape(m, hq, seg); // [M*Hkv, G, S]: head h*G + j is query head h*G + j

        // Each segment over its own rows, causally: one call with the segments as the batch.
        long start = layout.PrunedStart;
        var own = FusedAttention.Attend(q.reshape(m, seg, hq, d),
            k.narrow(1, start, m * seg).reshape(m, seg, hkv, d), v.narrow(1, start, m * seg).reshape(m, seg, hkv, d), causal: true, scale);

        var (merged, lse) = LseMerge.Merge((chosenOut, chosenLse), own); // fp32
        return (merged.reshape(1, m * seg, hq, d), lse.permute(1, 0, 2).reshape(1, hq, m * seg));
    }
}
