using ApbCluster.Model.Config;
using ApbCluster.Model.Layers;
using static TorchSharp.torch;

namespace ApbCluster.Model.Tests.Layers;

/// <summary>Tiny configs and random in-memory weights under HF names, for CPU tests.</summary>
internal static class TinyModels
{
    public static ModelConfig Llama => new()
    {
        ModelType = "llama", HiddenSize = 64, IntermediateSize = 128, NumLayers = 2,
        NumHeads = 4, NumKvHeads = 2, HeadDim = 16, VocabSize = 97, RmsNormEps = 1e-5, RopeTheta = 10000,
        // With head_dim 16 the wavelengths span 6..20000: some kept, some smoothed, some divided by factor.
        RopeScaling = new RopeScaling("llama3", 8.0, 1.0, 4.0, 64), MaxPositionEmbeddings = 256,
        EosTokenIds = [2],
    };

    public static ModelConfig Qwen2 => new()
    {
        ModelType = "qwen2", HiddenSize = 64, IntermediateSize = 96, NumLayers = 2,
        NumHeads = 4, NumKvHeads = 1, HeadDim = 16, VocabSize = 89, RmsNormEps = 1e-6, RopeTheta = 1_000_000,
        TieWordEmbeddings = true, AttentionBias = true, MaxPositionEmbeddings = 256, EosTokenIds = [3],
    };

    /// <summary>Every weight of the config, fp32 on the CPU, scaled so activations stay O(1).</summary>
    public static Dictionary<string, Tensor> RandomWeights(ModelConfig c, long seed)
    {
        var g = new Generator((ulong)seed);
        var w = new Dictionary<string, Tensor>();
        void Add(string name, params long[] shape)
        {
            var t = randn(shape, generator: g);
            if (name.EndsWith("norm.weight")) t = 1 + 0.1 * t;
            else if (name.EndsWith(".bias")) t = 0.5 * t;
            else if (shape.Length == 2 && !name.Contains("embed_tokens")) t /= Math.Sqrt(shape[1]);
            w[name] = t;
        }
        long h = c.HiddenSize, q = c.NumHeads * c.HeadDim, kv = c.NumKvHeads * c.HeadDim;
        Add("model.embed_tokens.weight", c.VocabSize, h);
        for (int i = 0; i < c.NumLayers; i++)
        {
            string p = $"model.layers.{i}.";
            Add(p + "input_layernorm.weight", h);
            Add(p + "post_attention_layernorm.weight", h);
            Add(p + "self_attn.q_proj.weight", q, h);
            Add(p + "self_attn.k_proj.weight", kv, h);
            Add(p + "self_attn.v_proj.weight", kv, h);
            Add(p + "self_attn.o_proj.weight", h, q);
            if (c.AttentionBias)
            {
                Add(p + "self_attn.q_proj.bias", q);
                Add(p + "self_attn.k_proj.bias", kv);
                Add(p + "self_attn.v_proj.bias", kv);
            }
            Add(p + "mlp.gate_proj.weight", c.IntermediateSize, h);
            Add(p + "mlp.up_proj.weight", c.IntermediateSize, h);
            Add(p + "mlp.down_proj.weight", h, c.IntermediateSize);
        }
        Add("model.norm.weight", h);
        if (!c.TieWordEmbeddings) Add("lm_head.weight", c.VocabSize, h);
        return w;
    }

    public static LlamaModel Build(ModelConfig c, Dictionary<string, Tensor> weights, ScalarType dtype = ScalarType.Float32) =>
        LlamaModel.FromWeights(c, new DictionaryWeights(weights), CPU, dtype);
}

/// <summary>IWeightSource over a dictionary; copies, so the model owns its tensors.</summary>
internal sealed class DictionaryWeights(IReadOnlyDictionary<string, Tensor> weights) : IWeightSource
{
    public Tensor Load(string name, long[] shape, ScalarType dtype, Device device)
    {
        if (!weights.TryGetValue(name, out var t)) throw new KeyNotFoundException($"missing tensor '{name}'");
        if (!t.shape.SequenceEqual(shape))
            throw new ArgumentException($"'{name}' has shape [{string.Join(",", t.shape)}], expected [{string.Join(",", shape)}]");
        return t.to(dtype, device, copy: true);
    }
}
