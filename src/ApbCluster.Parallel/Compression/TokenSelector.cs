using ApbCluster.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace ApbCluster.Parallel.Compression;

/// <summary>A host's compressed block: post-RoPE K and V of its selected tokens, [B, l_p, n_kv, D] each.
/// Token j of KV head g is a different token than token j of head g' (selection is per KV head).</summary>
public sealed record CompressedBlock(Tensor K, Tensor V, Tensor Indices)
{
    /// <summary>K and V side by side, [B, l_p, n_kv, 2D]: one tensor to all-gather.</summary>
    public Tensor Packed() => cat([K, V], -1);

    public static (Tensor K, Tensor V) Unpack(Tensor packed)
    {
        long d = packed.shape[^1] / 2;
        return (packed.narrow(-1, 0, d), packed.narrow(-1, d, d));
    }
}

/// <summary>Shared selection for every compressor (spec Phase 1 step 3).</summary>
public static class TokenSelector
{
    public const int PoolWindow = 5;

    /// <summary>Max-pool along the sequence (window 5, stride 1, same length; the edges see -inf padding).</summary>
    public static Tensor MaxPool(Tensor scores)
    {
        var s = scores.transpose(1, 2); // [B, n_kv, S]
        return nn.functional.max_pool1d(s, PoolWindow, stride: 1, padding: PoolWindow / 2).transpose(1, 2);
    }

    /// <summary>
    /// Pools the scores, forbids the first <paramref name="anchorLength"/> global positions (every host
    /// has them as anchor), takes the top-<paramref name="count"/> tokens per KV head and gathers their K, V.
    /// scores [B, S, n_kv] fp32; positions [S] int64 global positions; k, v [B, S, n_kv, D] post-RoPE.
    /// </summary>
    public static CompressedBlock Select(Tensor scores, Tensor positions, int anchorLength, int count, Tensor k, Tensor v)
    {
        long b = k.shape[0], s = k.shape[1], hkv = k.shape[2], d = k.shape[3];
        if (count > s) throw new ArgumentException($"cannot pass {count} tokens from a block of {s}.");
        using var scope = NewDisposeScope();
        var pooled = MaxPool(scores.to(ScalarType.Float32));
        // Explicit Scalars, kept alive across the native calls (an implicit temporary may be freed by the GC first).
        using var anchorEnd = anchorLength.ToScalar();
        var forbidden = positions.to(pooled.device).lt(anchorEnd).reshape(1, s, 1);
        pooled = pooled.masked_fill(forbidden, TorchConstants.MinusInfinity);
        var idx = pooled.topk(count, dim: 1).indexes; // [B, l_p, n_kv]
        var gatherIdx = idx.unsqueeze(-1).expand(b, count, hkv, d);
        return new CompressedBlock(
            k.gather(1, gatherIdx).MoveToOuterDisposeScope(),
            v.gather(1, gatherIdx).MoveToOuterDisposeScope(),
            idx.MoveToOuterDisposeScope());
    }
}
