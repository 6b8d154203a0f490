using static TorchSharp.torch;

namespace ApbCluster.Parallel.Compression;

/// <summary>
/// Training-free (Spava): score of key k_t for KV head g = mean over the question's queries and the
/// group's query heads of q . k_t, in fp32. The mean of dot products is the dot with the mean query,
/// so this costs one [S, D] x [D] product per KV head.
/// The host gets the question's queries from the question rows of its anchor (the anchor embeds the
/// question), re-projected at the question's true positions (see ApbStrategy).
/// </summary>
public sealed class QueryAwareCompressor : ICompressor
{
    public bool NeedsQuestion => true;

    public Tensor Score(CompressorInput x)
    {
        var q = x.QuestionQ ?? throw new ArgumentException("the query-aware compressor needs the question's queries.");
        using var scope = NewDisposeScope();
        long b = q.shape[0], lq = q.shape[1], hq = q.shape[2], d = q.shape[3], hkv = x.K.shape[2];
        if (lq == 0) return zeros(x.K.shape[0], x.K.shape[1], hkv, dtype: ScalarType.Float32, device: x.K.device).MoveToOuterDisposeScope();
        var qMean = q.to(ScalarType.Float32).reshape(b, lq, hkv, hq / hkv, d).mean([1, 3]); // [B, n_kv, D]
        return einsum("btgd,bgd->btg", x.K.to(ScalarType.Float32), qMean).MoveToOuterDisposeScope();
    }
}
