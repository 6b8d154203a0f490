using ApbCluster.Model.Layers;
using TorchSharp;
using static TorchSharp.torch;

namespace ApbCluster.Model.KvStores;

/// <summary>
/// ShadowKV's pieces as pure tensor functions (SPEC-shadowkv.md), batched over KV heads: the conversion after prefill
/// (inverse RoPE, factorisation, landmarks, outlier chunks) and a decode step's chunk selection. Shapes use H for KV
/// heads, n for chunks, D for the head size.
/// </summary>
public static class ShadowKvMath
{
    /// <summary>Pre-RoPE keys, fp32: post-RoPE keys [.., S, H, D] rotated back by their positions [S]. With cos/sin of
    /// the forward's own table, k = x cos + rot(x) sin inverts to x = k cos + rot'(k) sin, rot'(k) = [k2, -k1].</summary>
    public static Tensor InverseRope(Tensor keys, Tensor positions, RotaryEmbedding rope)
    {
        var (cos, sin) = rope.CosSin(positions, ScalarType.Float32);
        var k = keys.to(ScalarType.Float32);
        long half = k.shape[^1] / 2;
        var back = cat([k.narrow(-1, half, half), k.narrow(-1, 0, half).neg()], -1);
        return TorchConstants.Plus(k * cos, back * sin).view(keys.shape); // cos/sin carry a batch dimension
    }

    /// <summary>
    /// The best rank-<paramref name="rank"/> approximation of the pre-RoPE keys [S, H, D] seen as [S, H*D] (all KV heads
    /// side by side): U [S, r] and SV [H, r, D] in fp32, head h's keys being U x SV[h]. Computed from the Gram matrix
    /// (H*D)^2 rather than an SVD of the tall [S, H*D] matrix: its top eigenvectors V_r are the top right singular vectors
    /// and its eigenvalues the squared singular values, so U = K V_r / sigma and SV = sigma V_r^T give U x SV = K V_r V_r^T,
    /// the truncated SVD's reconstruction, with U orthonormal as an SVD's. At 128K tokens this is two matmuls and a
    /// 1024 x 1024 eigendecomposition instead of a tall SVD per layer (expected to take seconds; not measured here); the
    /// Gram matrix and its eigendecomposition run in fp64, so squaring the condition number costs no accuracy that fp32
    /// keys carry.
    /// </summary>
    public static (Tensor U, Tensor SV) Factorise(Tensor preRope, long rank)
    {
        long s = preRope.shape[0], h = preRope.shape[1], d = preRope.shape[2];
        var k = preRope.to(ScalarType.Float32).reshape(s, h * d);
        var k64 = k.to(ScalarType.Float64);
        var (values, vectors) = linalg.eigh(k64.t().matmul(k64)); // ascending
        var top = vectors.narrow(1, h * d - rank, rank).flip(1);       // [H*D, r], largest first
        // sigma = sqrt(eigenvalue); U = K V_r / sigma has orthonormal columns as an SVD's U (clamped: a zero singular value
        // leaves its U column meaningless, and its SV row zero, so U x SV is still K V_r V_r^T).
        var sigma = values.narrow(0, h * d - rank, rank).flip(0).clamp_min(1e-30).sqrt();
        var u = k64.matmul(top).div(sigma).to(ScalarType.Float32);
        var sv = (sigma.unsqueeze(1) * top.t()).to(ScalarType.Float32);
        return (u, sv.contiguous().view(rank, h, d).permute(1, 0, 2));
    }

    /// <summary>Each chunk's mean key: keys [n*chunk, H, D] -> landmarks [H, n, D] (fp32).</summary>
    public static Tensor Landmarks(Tensor keys, int chunk)
    {
        long h = keys.shape[1], d = keys.shape[2], n = keys.shape[0] / chunk;
        return keys.to(ScalarType.Float32).view(n, chunk, h, d).mean([1]).permute(1, 0, 2);
    }

    /// <summary>Per KV head and chunk, the lowest cosine similarity of the chunk's keys to its landmark: [H, n].</summary>
    public static Tensor MinCosine(Tensor keys, Tensor landmarks, int chunk)
    {
        long h = keys.shape[1], d = keys.shape[2], n = keys.shape[0] / chunk;
        var k = nn.functional.normalize(keys.to(ScalarType.Float32).view(n, chunk, h, d), dim: -1);
        var l = nn.functional.normalize(landmarks.permute(1, 0, 2), dim: -1).unsqueeze(1); // [n, 1, H, D]
        return (k * l).sum(-1).amin([1]).t(); // [n, chunk, H] -> [n, H] -> [H, n]
    }

    /// <summary>Per KV head, the <paramref name="outliers"/> chunks of lowest <paramref name="minCosine"/> [H, n]
    /// and the rest (the landmark set), each ascending by chunk: ([H, O], [H, n - O]) int64.</summary>
    public static (Tensor Outliers, Tensor Kept) SplitOutliers(Tensor minCosine, long outliers)
    {
        long h = minCosine.shape[0], n = minCosine.shape[1];
        var order = arange(n, dtype: ScalarType.Int64, device: minCosine.device).expand(h, n);
        if (outliers == 0) return (empty(new[] { h, 0L }, ScalarType.Int64, minCosine.device), order.contiguous());
        var chosen = minCosine.topk((int)outliers, dim: 1, largest: false).indexes;
        // Outliers sort after every kept chunk: one sort splits both sets, each ascending.
        using var shift = n.ToScalar();
        var key = order.add(zeros(h, n, ScalarType.Int64, minCosine.device).scatter(1, chosen, full_like(chosen, shift)), TorchConstants.One);
        var sorted = key.sort(1).Values;
        return (sorted.narrow(1, n - outliers, outliers).sub(shift), sorted.narrow(1, 0, n - outliers));
    }

    /// <summary>
    /// A decode step's chunks: q [1, Sq, Hq, D] scores every landmark [H, M, D] (q . landmark x
    /// <paramref name="scale"/>, softmax over the landmarks in fp32), summed over the step's queries and maxed over each
    /// KV head's query group; the top <paramref name="count"/> per KV head, as chunk ids from
    /// <paramref name="landmarkChunks"/> [H, M], ascending: [H, count].
    /// </summary>
    public static Tensor Select(Tensor q, Tensor landmarks, Tensor landmarkChunks, long count, double scale)
    {
        long sq = q.shape[1], hq = q.shape[2], d = q.shape[3], h = landmarks.shape[0], m = landmarks.shape[1], g = hq / h;
        var qh = q[0].view(sq, h, g, d).permute(1, 2, 0, 3).reshape(h, g * sq, d);
        var s = scale.ToScalar();
        try
        {
            var scores = qh.bmm(landmarks.to(q.dtype).transpose(1, 2)).to(ScalarType.Float32).mul(s).softmax(-1);
            var perHead = scores.view(h, g, sq, m).sum(2).amax([1]); // [H, M]
            var top = perHead.topk((int)count, dim: 1).indexes;
            return landmarkChunks.gather(1, top).sort(1).Values;
        }
        finally
        {
            s.Dispose(); // also keeps s reachable until the ops have run
        }
    }
}
