using ApbCluster.Model;
using ApbCluster.Parallel.Compression;
using TorchSharp;
using static TorchSharp.torch;

namespace ApbCluster.Evaluation.Analysis;

/// <summary>
/// Ways to score a host's local tokens from the question, side by side, for <see cref="SelectionProbe"/>: the shipped
/// rule (mean of q . k over the question's queries, pre-softmax) and its softmax counterpart (mean of the attention
/// probabilities, each question query normalised over the local block), each with the question's queries either from
/// the anchor (what APB has) or from the dense prompt (the question after the whole document).
/// All take q [1, l_q, Hq, D] and k [1, S, n_kv, D] post-RoPE and return [1, S, n_kv] fp32.
/// </summary>
public static class SelectionScorers
{
    /// <summary>The query-aware compressor's own rule, so the probe scores exactly what APB selects with.</summary>
    public static Tensor MeanLogit(Tensor q, Tensor k) =>
        new QueryAwareCompressor().Score(new CompressorInput(0, 0, k, k, k, k, q));

    /// <summary>Mean over question queries and the group's heads of softmax_t(q . k_t * scale) over the block.</summary>
    public static Tensor MeanSoftmax(Tensor q, Tensor k, double scale)
    {
        using var scope = NewDisposeScope();
        long lq = q.shape[1], hq = q.shape[2], d = q.shape[3], s = k.shape[1], hkv = k.shape[2];
        var qg = q.to(ScalarType.Float32).reshape(lq, hkv, hq / hkv, d);
        using var sc = scale.ToScalar(); // explicit: an implicit Scalar may be freed by the GC mid-call
        var logits = einsum("lgrd,sgd->lgrs", qg, k[0].to(ScalarType.Float32)).mul(sc);
        var probs = logits.softmax(-1).mean([0, 2]); // [n_kv, S]
        return probs.transpose(0, 1).reshape(1, s, hkv).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The dense prompt's own attention: mean over the question rows and each group's heads of their attention
    /// probabilities over every earlier key (softmax over the whole prompt, causal), for document positions only:
    /// [1, n, n_kv]. Also the mass each question row puts on <paramref name="marked"/> document positions,
    /// averaged over heads: [l_q].
    /// </summary>
    public static (Tensor Mass, Tensor MarkedMassPerRow) DenseAttention(Tensor q, Tensor k, int documentLength, double scale, Tensor marked)
    {
        using var scope = NewDisposeScope();
        long lq = q.shape[1], hq = q.shape[2], d = q.shape[3], total = k.shape[1], hkv = k.shape[2];
        var qg = q.to(ScalarType.Float32).reshape(lq, hkv, hq / hkv, d);
        using var sc = scale.ToScalar();
        var logits = einsum("lgrd,sgd->lgrs", qg, k[0].to(ScalarType.Float32)).mul(sc); // [l_q, n_kv, r, total]
        // Question row i sits at position n + i and sees keys up to there.
        var rowPos = arange(documentLength, documentLength + lq, dtype: ScalarType.Int64).reshape(lq, 1, 1, 1);
        var keyPos = arange(total, dtype: ScalarType.Int64).reshape(1, 1, 1, total);
        var probs = logits.masked_fill(keyPos.gt(rowPos), TorchConstants.MinusInfinity).softmax(-1).narrow(-1, 0, documentLength);
        var mass = probs.mean([0, 2]).transpose(0, 1).reshape(1, documentLength, hkv);
        var perRow = probs.mul(marked.to(ScalarType.Float32).reshape(1, 1, 1, documentLength)).sum(-1).mean([1, 2]);
        return (mass.MoveToOuterDisposeScope(), perRow.MoveToOuterDisposeScope());
    }
}
