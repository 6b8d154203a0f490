using TorchSharp;
using static TorchSharp.torch;

namespace ApbCluster.Parallel.Compression;

/// <summary>
/// Locret's retaining heads (the paper's compressor): per layer, fc1 (q+2kv dims -> 1024, no bias) ->
/// SiLU -> fc2 (-> n_kv, no bias) on the concat of the token's pre-RoPE q, k, v projections.
/// Weights: <c>model.layers.{i}.self_attn.fc1.weight</c> [1024, in] and <c>fc2.weight</c> [n_kv, 1024].
/// </summary>
public sealed class RetainingHeadCompressor : ICompressor
{
    public const int HiddenWidth = 1024;
    private readonly Tensor[] _fc1, _fc2;

    public RetainingHeadCompressor(IReadOnlyList<Tensor> fc1, IReadOnlyList<Tensor> fc2)
    {
        if (fc1.Count != fc2.Count) throw new ArgumentException($"fc1 has {fc1.Count} layers, fc2 {fc2.Count}");
        _fc1 = fc1.ToArray();
        _fc2 = fc2.ToArray();
    }

    public bool NeedsQuestion => false;
    public int Layers => _fc1.Length;

    public static string Fc1Key(int layer) => $"model.layers.{layer}.self_attn.fc1.weight";
    public static string Fc2Key(int layer) => $"model.layers.{layer}.self_attn.fc2.weight";

    /// <summary>Loads from tensors in the published key layout (e.g. a safetensors file), checking shapes.</summary>
    public static RetainingHeadCompressor Load(IReadOnlyDictionary<string, Tensor> tensors, int layers, int qDim, int kvDim, int kvHeads,
        Device? device = null, ScalarType? dtype = null)
    {
        var fc1 = new Tensor[layers];
        var fc2 = new Tensor[layers];
        for (int i = 0; i < layers; i++)
        {
            fc1[i] = Take(tensors, Fc1Key(i), [HiddenWidth, qDim + 2 * kvDim], device, dtype);
            fc2[i] = Take(tensors, Fc2Key(i), [kvHeads, HiddenWidth], device, dtype);
        }
        return new RetainingHeadCompressor(fc1, fc2);
    }

    /// <summary>Random weights (tests and benchmarks; prefill time does not depend on them).</summary>
    public static RetainingHeadCompressor CreateRandom(int layers, int qDim, int kvDim, int kvHeads, long seed,
        Device? device = null, ScalarType dtype = ScalarType.Float32)
    {
        var g = new Generator((ulong)seed);
        int inDim = qDim + 2 * kvDim;
        Tensor Init(long o, long i) => (rand([o, i], generator: g) * 2 - 1).mul_(1 / Math.Sqrt(i)).to(dtype, device ?? CPU);
        return new RetainingHeadCompressor(
            Enumerable.Range(0, layers).Select(_ => Init(HiddenWidth, inDim)).ToArray(),
            Enumerable.Range(0, layers).Select(_ => Init(kvHeads, HiddenWidth)).ToArray());
    }

    /// <summary>The weights in the published key layout (for saving, or round-trip tests).</summary>
    public Dictionary<string, Tensor> StateDict()
    {
        var d = new Dictionary<string, Tensor>();
        for (int i = 0; i < _fc1.Length; i++) { d[Fc1Key(i)] = _fc1[i]; d[Fc2Key(i)] = _fc2[i]; }
        return d;
    }

    public Tensor Score(CompressorInput x)
    {
        using var scope = NewDisposeScope();
        long b = x.QPre.shape[0], s = x.QPre.shape[1];
        var w1 = _fc1[x.Layer];
        var input = cat([x.QPre.reshape(b, s, -1), x.KPre.reshape(b, s, -1), x.VPre.reshape(b, s, -1)], -1).to(w1.dtype);
        var hidden = nn.functional.silu(nn.functional.linear(input, w1));
        return nn.functional.linear(hidden, _fc2[x.Layer]).to(ScalarType.Float32).MoveToOuterDisposeScope();
    }

    private static Tensor Take(IReadOnlyDictionary<string, Tensor> t, string key, long[] shape, Device? device, ScalarType? dtype)
    {
        if (!t.TryGetValue(key, out var w)) throw new KeyNotFoundException($"retaining-head weight '{key}' is missing.");
        if (!w.shape.SequenceEqual(shape))
            throw new ArgumentException($"'{key}' has shape [{string.Join(",", w.shape)}], expected [{string.Join(",", shape)}].");
        return w.to(dtype ?? w.dtype, device ?? w.device);
    }
}
