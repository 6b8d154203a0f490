using ApbCluster.Model;
using ApbCluster.Model.Config;
using ApbCluster.Model.Layers;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ApbCluster.Training.Demo;

/// <summary>
/// A Llama decoder with trainable fp32 weights under Hugging Face's names, and a differentiable forward with the
/// inference model's maths (<see cref="LlamaModel"/>: RMSNorm in fp32 cast back before the weight, rotate-half RoPE
/// from <see cref="RotaryEmbedding.ComputeInvFreq"/>, GQA by repeating each KV head over its query group, SwiGLU,
/// tied or own lm_head). Attention is libtorch's scaled_dot_product_attention (causal), which on CUDA runs a fused kernel
/// with its backward. With a 16-bit <c>compute</c> dtype the weights are cast per forward (fp32 master weights) and
/// the residual stream stays fp32, as autocast would do.
/// <para>All weights live in one flat fp32 parameter (<see cref="Flat"/>); each forward takes views of it by name,
/// so the gradient is one tensor and the optimiser (<see cref="FlatAdamW"/>) runs a handful of kernels a step.
/// The forward creates no implicit TorchSharp <c>Scalar</c>s (see <see cref="TorchConstants"/>).</para>
/// </summary>
public sealed class TrainableLlama : IDisposable
{
    private readonly Parameter _flat;
    private readonly List<(string Name, long Offset, long[] Shape)> _layout = [];
    private readonly Dictionary<string, (long Offset, long[] Shape)> _byName = new(StringComparer.Ordinal);
    private readonly Tensor _cos, _sin; // fp32 [MaxPositionEmbeddings, head dim], as RotaryEmbedding's tables
    private readonly Scalar _eps;

    public ModelConfig Config { get; }
    public Device Device { get; }

    /// <summary>Every weight, concatenated in <see cref="Shapes"/> order: the one trainable tensor.</summary>
    public Parameter Flat => _flat;
    public IEnumerable<Parameter> Parameters => [_flat];
    public long ParameterCount => _flat.NumberOfElements;
    public IReadOnlyList<string> Names => _layout.Select(l => l.Name).ToArray();

    private TrainableLlama(ModelConfig config, Device device, Func<string, long[], Tensor> init)
    {
        if (config.AttentionBias) throw new ArgumentException("the trainable model has no attention biases.");
        Config = config;
        Device = device;
        using (var scope = NewDisposeScope())
        {
            var pieces = new List<Tensor>();
            long offset = 0;
            foreach (var (name, shape) in Shapes(config))
            {
                var t = init(name, shape).to(ScalarType.Float32, CPU).reshape(-1);
                pieces.Add(t);
                _layout.Add((name, offset, shape));
                _byName[name] = (offset, shape);
                offset += t.NumberOfElements;
            }
            _flat = new Parameter(cat(pieces.ToArray(), 0).to(device).contiguous(), requires_grad: true);
            _flat.DetachFromDisposeScope();

            using var invFreq = RotaryEmbedding.ComputeInvFreq(config);
            using var positions = arange(config.MaxPositionEmbeddings, dtype: ScalarType.Float32); // one-time
            var freqs = outer(positions, invFreq);
            var emb = cat([freqs, freqs], -1);
            _cos = emb.cos().to(device).DetachFromDisposeScope();
            _sin = emb.sin().to(device).DetachFromDisposeScope();
        }
        _eps = config.RmsNormEps.ToScalar();
    }

    /// <summary>Fresh weights from a CPU generator seeded with <paramref name="seed"/> (the same on every device):
    /// N(0, 0.02), residual outputs (o_proj, down_proj) scaled by 1/sqrt(2 layers), norms 1.</summary>
    public static TrainableLlama Create(ModelConfig config, long seed, Device device)
    {
        using var generator = new Generator((ulong)seed);
        double residualStd = 0.02 / Math.Sqrt(2.0 * config.NumLayers);
        return new TrainableLlama(config, device, (name, shape) =>
        {
            if (name.EndsWith("norm.weight", StringComparison.Ordinal)) return ones(shape);
            double std = name.EndsWith("o_proj.weight", StringComparison.Ordinal) || name.EndsWith("down_proj.weight", StringComparison.Ordinal)
                ? residualStd : 0.02;
            using var s = std.ToScalar();
            return randn(shape, generator: generator).mul_(s);
        });
    }

    /// <summary>Weights given by name (e.g. loaded from a checkpoint), as the fp32 trainable buffer.</summary>
    public static TrainableLlama FromTensors(ModelConfig config, IReadOnlyDictionary<string, Tensor> tensors, Device device) =>
        new(config, device, (name, shape) =>
        {
            if (!tensors.TryGetValue(name, out var t)) throw new KeyNotFoundException($"no tensor '{name}'.");
            if (!t.shape.SequenceEqual(shape))
                throw new ArgumentException($"tensor '{name}' has shape [{string.Join(", ", t.shape)}], expected [{string.Join(", ", shape)}].");
            return t.to(ScalarType.Float32).clone();
        });

    /// <summary>HF tensor names and shapes of the Llama, in a fixed order (lm_head last, when not tied).</summary>
    public static IEnumerable<(string Name, long[] Shape)> Shapes(ModelConfig c)
    {
        long h = c.HiddenSize, q = (long)c.NumHeads * c.HeadDim, kv = (long)c.NumKvHeads * c.HeadDim, m = c.IntermediateSize;
        yield return ("model.embed_tokens.weight", [c.VocabSize, h]);
        for (int i = 0; i < c.NumLayers; i++)
        {
            string p = $"model.layers.{i}.";
            yield return (p + "input_layernorm.weight", [h]);
            yield return (p + "self_attn.q_proj.weight", [q, h]);
            yield return (p + "self_attn.k_proj.weight", [kv, h]);
            yield return (p + "self_attn.v_proj.weight", [kv, h]);
            yield return (p + "self_attn.o_proj.weight", [h, q]);
            yield return (p + "post_attention_layernorm.weight", [h]);
            yield return (p + "mlp.gate_proj.weight", [m, h]);
            yield return (p + "mlp.up_proj.weight", [m, h]);
            yield return (p + "mlp.down_proj.weight", [h, m]);
        }
        yield return ("model.norm.weight", [h]);
        if (!c.TieWordEmbeddings) yield return ("lm_head.weight", [c.VocabSize, h]);
    }

    /// <summary>The weight <paramref name="name"/>: a view of <see cref="Flat"/> (gradients flow into the flat buffer).</summary>
    public Tensor Weight(string name)
    {
        var (offset, shape) = _byName[name];
        return _flat.narrow(0, offset, shape.Aggregate(1L, (a, b) => a * b)).view(shape);
    }

    /// <summary>The gradient of <paramref name="name"/> (a view of the flat gradient), or null before any backward.</summary>
    public Tensor? Gradient(string name)
    {
        if (_flat.grad is not { } g) return null;
        var (offset, shape) = _byName[name];
        return g.narrow(0, offset, shape.Aggregate(1L, (a, b) => a * b)).view(shape);
    }

    /// <summary>1 for every element of the weights <paramref name="selected"/> accepts, else 0: [ParameterCount] fp32 on the device.</summary>
    public Tensor Mask(Func<string, long[], bool> selected)
    {
        var mask = new float[ParameterCount];
        foreach (var (name, offset, shape) in _layout)
            if (selected(name, shape)) Array.Fill(mask, 1f, (int)offset, (int)shape.Aggregate(1L, (a, b) => a * b));
        return tensor(mask, device: Device);
    }

    /// <summary>Normalised final hidden states [B, S, hidden] (in <paramref name="compute"/>) of token ids [B, S] at positions 0..S-1.</summary>
    public Tensor ForwardNormed(Tensor ids, ScalarType compute)
    {
        var c = Config;
        long b = ids.shape[0], s = ids.shape[1];
        if (s > c.MaxPositionEmbeddings) throw new ArgumentException($"{s} positions exceed max_position_embeddings ({c.MaxPositionEmbeddings}).");
        int groups = c.NumHeads / c.NumKvHeads;
        Tensor W(string name) => compute == ScalarType.Float32 ? Weight(name) : Weight(name).to(compute);
        var one = TorchConstants.One;

        var cos = _cos.narrow(0, 0, s).to(compute).view(1, s, 1, -1);
        var sin = _sin.narrow(0, 0, s).to(compute).view(1, s, 1, -1);
        var h = Weight("model.embed_tokens.weight").index_select(0, ids.reshape(-1)).view(b, s, c.HiddenSize); // fp32 residual
        for (int i = 0; i < c.NumLayers; i++)
        {
            string p = $"model.layers.{i}.";
            var x = RmsNorm(h, p + "input_layernorm.weight", compute);
            var q = Rotate(nn.functional.linear(x, W(p + "self_attn.q_proj.weight")).view(b, s, c.NumHeads, c.HeadDim), cos, sin);
            var k = Rotate(nn.functional.linear(x, W(p + "self_attn.k_proj.weight")).view(b, s, c.NumKvHeads, c.HeadDim), cos, sin);
            var v = nn.functional.linear(x, W(p + "self_attn.v_proj.weight")).view(b, s, c.NumKvHeads, c.HeadDim);
            if (groups > 1)
            {
                k = k.repeat_interleave(groups, dim: 2);
                v = v.repeat_interleave(groups, dim: 2);
            }
            var attn = nn.functional.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), null, 0.0, true)
                .transpose(1, 2).reshape(b, s, (long)c.NumHeads * c.HeadDim);
            h = h.add(nn.functional.linear(attn, W(p + "self_attn.o_proj.weight")).to(ScalarType.Float32), one);
            var y = RmsNorm(h, p + "post_attention_layernorm.weight", compute);
            var gate = nn.functional.silu(nn.functional.linear(y, W(p + "mlp.gate_proj.weight")));
            var mlp = nn.functional.linear(gate.mul(nn.functional.linear(y, W(p + "mlp.up_proj.weight"))), W(p + "mlp.down_proj.weight"));
            h = h.add(mlp.to(ScalarType.Float32), one);
        }
        return RmsNorm(h, "model.norm.weight", compute);
    }

    /// <summary>Logits [..., vocab] in <paramref name="compute"/> for normalised hidden states.</summary>
    public Tensor Logits(Tensor normed, ScalarType compute)
    {
        var e = Weight(Config.TieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight");
        return nn.functional.linear(normed, compute == ScalarType.Float32 ? e : e.to(compute));
    }

    /// <summary>Logits [B, S, vocab] of token ids [B, S].</summary>
    public Tensor Forward(Tensor ids, ScalarType compute) => Logits(ForwardNormed(ids, compute), compute);

    /// <summary>CPU copies of the weights in <paramref name="dtype"/>, by HF name (owned by the caller's dispose scope).</summary>
    public Dictionary<string, Tensor> StateDict(ScalarType dtype)
    {
        using var noGrad = no_grad();
        return _layout.ToDictionary(l => l.Name, l => Weight(l.Name).detach().to(dtype, CPU).contiguous(), StringComparer.Ordinal);
    }

    // HF's LlamaRMSNorm: normalise in fp32, cast to the (compute) dtype, then multiply by the weight.
    private Tensor RmsNorm(Tensor x, string weight, ScalarType compute)
    {
        var xf = x.to(ScalarType.Float32);
        var normed = xf.mul(rsqrt(xf.mul(xf).mean([-1], keepdim: true).add(_eps, TorchConstants.One)));
        var w = compute == ScalarType.Float32 ? Weight(weight) : Weight(weight).to(compute);
        return w.mul(normed.to(compute));
    }

    private static Tensor Rotate(Tensor x, Tensor cos, Tensor sin)
    {
        long half = x.shape[^1] / 2;
        var rotated = cat([x.narrow(-1, half, half).neg(), x.narrow(-1, 0, half)], -1);
        return x.mul(cos).add(rotated.mul(sin), TorchConstants.One);
    }

    public void Dispose()
    {
        _flat.Dispose();
        _cos.Dispose();
        _sin.Dispose();
        _eps.Dispose();
    }
}
