using ApbCluster.Model.Config;
using ApbCluster.Model.Layers;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ApbCluster.Training.Demo;

/// <summary>
/// A Llama decoder with trainable fp32 parameters under Hugging Face's names, and a differentiable forward with the
/// inference model's maths (<see cref="LlamaModel"/>: RMSNorm in fp32 cast back before the weight, rotate-half RoPE
/// from <see cref="RotaryEmbedding.ComputeInvFreq"/>, GQA by repeating each KV head over its query group, SwiGLU,
/// tied lm_head). Attention is libtorch's scaled_dot_product_attention (causal), which on CUDA runs a fused kernel
/// with its backward. With a 16-bit <c>compute</c> dtype the weights are cast per forward (fp32 master weights) and
/// the residual stream stays fp32, as autocast would do.
/// </summary>
public sealed class TrainableLlama : IDisposable
{
    private readonly List<(string Name, Parameter Value)> _parameters = [];
    private readonly Dictionary<string, Parameter> _byName = new(StringComparer.Ordinal);
    private readonly Tensor _invFreq;

    public ModelConfig Config { get; }
    public Device Device { get; }

    public IReadOnlyList<(string Name, Parameter Value)> NamedParameters => _parameters;
    public IEnumerable<Parameter> Parameters => _parameters.Select(p => p.Value);
    public long ParameterCount => _parameters.Sum(p => p.Value.NumberOfElements);

    private TrainableLlama(ModelConfig config, Device device, Func<string, long[], Tensor> init)
    {
        if (!config.TieWordEmbeddings) throw new ArgumentException("the trainable model ties lm_head to the embeddings.");
        if (config.AttentionBias) throw new ArgumentException("the trainable model has no attention biases.");
        Config = config;
        Device = device;
        foreach (var (name, shape) in Shapes(config))
        {
            using var t = init(name, shape);
            var p = new Parameter(t.to(ScalarType.Float32, device).contiguous(), requires_grad: true);
            p.DetachFromDisposeScope();
            _parameters.Add((name, p));
            _byName[name] = p;
        }
        _invFreq = RotaryEmbedding.ComputeInvFreq(config).to(device);
        _invFreq.DetachFromDisposeScope();
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
            return randn(shape, generator: generator).mul_(std);
        });
    }

    /// <summary>Weights given by name (e.g. loaded from a checkpoint), as fp32 trainable parameters.</summary>
    public static TrainableLlama FromTensors(ModelConfig config, IReadOnlyDictionary<string, Tensor> tensors, Device device) =>
        new(config, device, (name, shape) =>
        {
            if (!tensors.TryGetValue(name, out var t)) throw new KeyNotFoundException($"no tensor '{name}'.");
            if (!t.shape.SequenceEqual(shape))
                throw new ArgumentException($"tensor '{name}' has shape [{string.Join(", ", t.shape)}], expected [{string.Join(", ", shape)}].");
            return t.to(ScalarType.Float32).clone();
        });

    /// <summary>HF tensor names and shapes of a tied-embedding Llama, in a fixed order.</summary>
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
    }

    /// <summary>Normalised final hidden states [B, S, hidden] (in <paramref name="compute"/>) of token ids [B, S] at positions 0..S-1.</summary>
    public Tensor ForwardNormed(Tensor ids, ScalarType compute)
    {
        var c = Config;
        long b = ids.shape[0], s = ids.shape[1];
        int groups = c.NumHeads / c.NumKvHeads;
        Tensor W(string name) => compute == ScalarType.Float32 ? _byName[name] : _byName[name].to(compute);

        var (cos, sin) = CosSin(s, compute);
        var h = _byName["model.embed_tokens.weight"].index_select(0, ids.reshape(-1)).view(b, s, c.HiddenSize); // fp32 residual
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
            h = h + nn.functional.linear(attn, W(p + "self_attn.o_proj.weight")).to(ScalarType.Float32);
            var y = RmsNorm(h, p + "post_attention_layernorm.weight", compute);
            var gate = nn.functional.silu(nn.functional.linear(y, W(p + "mlp.gate_proj.weight")));
            var mlp = nn.functional.linear(gate * nn.functional.linear(y, W(p + "mlp.up_proj.weight")), W(p + "mlp.down_proj.weight"));
            h = h + mlp.to(ScalarType.Float32);
        }
        return RmsNorm(h, "model.norm.weight", compute);
    }

    /// <summary>Logits [B, S, vocab] in <paramref name="compute"/> for normalised hidden states (tied lm_head).</summary>
    public Tensor Logits(Tensor normed, ScalarType compute)
    {
        var e = _byName["model.embed_tokens.weight"];
        return nn.functional.linear(normed, compute == ScalarType.Float32 ? e : e.to(compute));
    }

    /// <summary>Logits [B, S, vocab] of token ids [B, S].</summary>
    public Tensor Forward(Tensor ids, ScalarType compute) => Logits(ForwardNormed(ids, compute), compute);

    /// <summary>Detached CPU copies of the weights in <paramref name="dtype"/>, by HF name (owned by the caller's dispose scope).</summary>
    public Dictionary<string, Tensor> StateDict(ScalarType dtype)
    {
        using var noGrad = no_grad();
        return _parameters.ToDictionary(p => p.Name, p => p.Value.detach().to(dtype, CPU).contiguous(), StringComparer.Ordinal);
    }

    // HF's LlamaRMSNorm: normalise in fp32, cast to the (compute) dtype, then multiply by the weight.
    private Tensor RmsNorm(Tensor x, string weight, ScalarType compute)
    {
        var xf = x.to(ScalarType.Float32);
        var normed = xf * rsqrt(xf.pow(2).mean([-1], keepdim: true) + Config.RmsNormEps);
        var w = _byName[weight];
        return (compute == ScalarType.Float32 ? w : w.to(compute)) * normed.to(compute);
    }

    /// <summary>cos/sin [1, S, 1, D] as RotaryEmbedding builds them: fp32 angles, cast to the compute dtype.</summary>
    private (Tensor Cos, Tensor Sin) CosSin(long s, ScalarType compute)
    {
        var t = arange(s, dtype: ScalarType.Float32, device: Device);
        var freqs = outer(t, _invFreq);
        var emb = cat([freqs, freqs], -1);
        return (emb.cos().to(compute).view(1, s, 1, -1), emb.sin().to(compute).view(1, s, 1, -1));
    }

    private static Tensor Rotate(Tensor x, Tensor cos, Tensor sin)
    {
        long half = x.shape[^1] / 2;
        var rotated = cat([x.narrow(-1, half, half).neg(), x.narrow(-1, 0, half)], -1);
        return x * cos + rotated * sin;
    }

    public void Dispose()
    {
        foreach (var (_, p) in _parameters) p.Dispose();
        _invFreq.Dispose();
    }
}
