using ApbCluster.Model.Config;

namespace ApbCluster.Model.KvStores;

/// <summary>
/// How a ShadowKV store splits a context of <see cref="Tokens"/> tokens: the first <see cref="SparseChunks"/> whole
/// chunks are the sparse range (low-rank keys, landmarks, selectable), the last <see cref="LocalTokens"/> (the local
/// chunks plus the rest that does not fill a chunk) stay exact. Per KV head, <see cref="OutlierChunks"/> of the sparse
/// chunks are kept exactly and leave the landmark set, which then has <see cref="LandmarkChunks"/>; a step selects
/// <see cref="SelectedChunks"/> of those. The factorisation's rank is capped by the matrix it factorises.
/// </summary>
public sealed record ShadowKvLayout(long Tokens, int Chunk, long SparseChunks, long LocalTokens, long OutlierChunks,
    long LandmarkChunks, long SelectedChunks, long Rank)
{
    public long SparseTokens => SparseChunks * Chunk;

    /// <summary>Exact tokens per KV head: outlier chunks and the local tail.</summary>
    public long ExactTokens => OutlierChunks * Chunk + LocalTokens;

    /// <summary>Keys each step attends per KV head: the exact ones and the rebuilt selection.</summary>
    public long AttendedTokens => ExactTokens + SelectedChunks * Chunk;

    public static ShadowKvLayout For(long tokens, int kvHeads, int headDim, ShadowKvOptions o)
    {
        long whole = tokens / o.Chunk;
        long local = Math.Min(o.Local, whole);
        long sparse = whole - local;
        long outliers = Math.Min(o.Outliers, sparse);
        long landmarks = sparse - outliers;
        long rank = sparse == 0 ? 0 : Math.Min(o.Rank, Math.Min(sparse * o.Chunk, (long)kvHeads * headDim));
        return new ShadowKvLayout(tokens, o.Chunk, sparse, tokens - sparse * o.Chunk, outliers, landmarks,
            Math.Min(o.BudgetChunks, landmarks), rank);
    }

    /// <summary>Bytes per layer on the device and in host memory, as <see cref="ShadowKvStore"/> allocates them once
    /// decoding runs: U, SV, landmarks (model dtype), their chunk ids, the exact K/V, the sparse range's V (device or
    /// host) and, with V on the host, the previous step's selected V chunks and their ids kept on the device; the
    /// positions, token table and head offsets it shares over layers are counted once, in <see cref="SharedBytes"/>.</summary>
    public (long Device, long Host) LayerBytes(int kvHeads, int headDim, int elementBytes, ShadowKvValues values)
    {
        long u = SparseTokens * Rank * elementBytes;
        long sv = kvHeads * Rank * headDim * elementBytes;
        long landmarks = kvHeads * LandmarkChunks * headDim * elementBytes + kvHeads * LandmarkChunks * sizeof(long);
        long exact = 2 * ExactTokens * kvHeads * headDim * elementBytes;
        long v = SparseTokens * kvHeads * headDim * elementBytes;
        long device = u + sv + landmarks + exact;
        long cache = SelectedChunks * kvHeads * (Chunk * headDim * elementBytes + sizeof(long));
        return values == ShadowKvValues.Device ? (device + v, 0) : (device + cache, v);
    }

    /// <summary>Positions and the chunk-to-token table of the sparse range and each KV head's offset, int64, shared by
    /// every layer.</summary>
    public long SharedBytes(int kvHeads) => (2 * SparseTokens + kvHeads) * sizeof(long);

    public static int ElementBytes(ModelConfig config) => config.TorchDtype == "float32" ? 4 : 2;
}
