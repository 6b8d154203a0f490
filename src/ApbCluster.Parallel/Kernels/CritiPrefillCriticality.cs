using ApbCluster.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace ApbCluster.Parallel.Kernels;

/// <summary>The blocks every pruned (segment, KV head) attends: [M, Hkv, budget/block] int64, ascending.</summary>
public sealed record CritiPrefillSelection(CritiPrefillLayout Layout, Tensor? Blocks);

/// <summary>
/// CritiPrefill's criticality estimation (spec steps 1-5), batched over all pruned segments and heads:
/// segment max/min summaries of post-RoPE Q, block max/min of post-RoPE K, score = max(mean(Q·kmax), mean(Q·kmin))
/// with Q = [qmax; qmin], averaged over each GQA group, later blocks masked, softmax over blocks in fp32,
/// layer fusion, top budget/block blocks. q [1, rows, Hq, D], k [1, rows, Hkv, D].
/// </summary>
public static class CritiPrefillCriticality
{
    public static CritiPrefillSelection Select(Tensor q, Tensor k, CritiPrefillLayout layout, CritiPrefillState state, int layer)
    {
        if (!layout.PrunesAnything) return new CritiPrefillSelection(layout, null);
        using var scope = NewDisposeScope();
        var (probs, later) = Scores(q, k, layout);
        var fused = state.Fuse(layer, probs);
        // Underflowed scores of allowed blocks are 0, as are the masked ones: mask again so a tie never picks a later block.
        var choice = fused.masked_fill(later, TorchConstants.MinusInfinity).topk(layout.BudgetBlocks, dim: -1).indexes;
        var blocks = choice.sort(-1).Values; // ascending: the gather then reads K/V in order
        return new CritiPrefillSelection(layout, blocks.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// This layer's block probabilities [M, Hkv, blocks] fp32 (softmax over the blocks each segment may choose)
    /// and the mask of blocks it may not choose [M, 1, blocks] (those ending after the segment starts).
    /// </summary>
    public static (Tensor Probabilities, Tensor Later) Scores(Tensor q, Tensor k, CritiPrefillLayout layout)
    {
        if (q.shape[0] != 1) throw new ArgumentException($"CritiPrefill runs batch 1, not {q.shape[0]}.");
        long hq = q.shape[2], hkv = k.shape[2], d = q.shape[3], g = hq / hkv;
        long m = layout.PrunedSegments, seg = layout.Segment, blocks = layout.CandidateBlocks, bl = layout.Block;
        using var scope = NewDisposeScope();
        using var half = 0.5.ToScalar();
        // Segment summaries; mean over [qmax; qmin] of Q·x is ((qmax + qmin)/2)·x, one product instead of two.
        var qs = q.narrow(1, layout.PrunedStart, layout.PrunedRows).reshape(m, seg, hq, d);
        var qMid = TorchConstants.Plus(qs.amax([1]).to(ScalarType.Float32), qs.amin([1]).to(ScalarType.Float32)).mul(half);
        qMid = qMid.view(m, hkv, g, d).permute(1, 0, 2, 3).reshape(hkv, m * g, d);
        var ks = k.narrow(1, 0, blocks * bl).reshape(blocks, bl, hkv, d);
        var kMax = ks.amax([1]).to(ScalarType.Float32).permute(1, 2, 0); // [Hkv, D, blocks]
        var kMin = ks.amin([1]).to(ScalarType.Float32).permute(1, 2, 0);
        var score = maximum(qMid.bmm(kMax), qMid.bmm(kMin)) // [Hkv, M*G, blocks]
            .view(hkv, m, g, blocks).mean([2]).permute(1, 0, 2); // GQA group mean: [M, Hkv, blocks]

        // Segment s may choose block b when b ends before s starts: b < s * segment / block.
        using var perSegment = (seg / bl).ToScalar();
        var limit = TorchConstants.Positions(layout.FirstPruned, layout.FirstPruned + m, q.device).mul(perSegment);
        var later = TorchConstants.Positions(0, blocks, q.device).unsqueeze(0).ge(limit.unsqueeze(1)).unsqueeze(1); // [M, 1, blocks]
        var probs = score.masked_fill(later, TorchConstants.MinusInfinity).softmax(-1, ScalarType.Float32);
        return (probs.MoveToOuterDisposeScope(), later.MoveToOuterDisposeScope());
    }
}
