using ApbCluster.Model.Attention;
using ApbCluster.Model.Config;
using ApbCluster.Model.Forward;
using TorchSharp;
using static TorchSharp.torch;

namespace ApbCluster.Model.Layers;

/// <summary>HF's "model" submodule: embed_tokens, layers, norm.</summary>
public sealed class LlamaBackbone : nn.Module
{
#pragma warning disable IDE1006
    internal readonly TokenEmbedding embed_tokens;
    internal readonly TorchSharp.Modules.ModuleList<DecoderLayer> layers;
    internal readonly RmsNorm norm;
#pragma warning restore IDE1006

    public LlamaBackbone(IWeightSource w, ModelConfig c, RotaryEmbedding rope, ScalarType dtype, Device device) : base("model")
    {
        embed_tokens = new TokenEmbedding(w, "model.embed_tokens", c.VocabSize, c.HiddenSize, dtype, device);
        layers = new TorchSharp.Modules.ModuleList<DecoderLayer>(
            Enumerable.Range(0, c.NumLayers).Select(i => new DecoderLayer(w, i, c, rope, dtype, device)).ToArray());
        norm = new RmsNorm(w, "model.norm", c.HiddenSize, c.RmsNormEps, dtype, device);
        Layers = layers.ToArray();
        RegisterComponents();
    }

    internal DecoderLayer[] Layers { get; }
}

/// <summary>
/// A Llama-family causal LM (Llama 2/3.x, Qwen 2.x) faithful to Hugging Face transformers.
/// Parameter names equal the HF weight names (named_parameters() gives "model.layers.0.self_attn.q_proj.weight", ...).
/// Inference only: weights are loaded without gradients, every forward runs under no_grad in its own dispose scope.
/// </summary>
public sealed class LlamaModel : nn.Module
{
#pragma warning disable IDE1006
    private readonly LlamaBackbone model;
    private readonly Linear? lm_head; // null when tied to embed_tokens
#pragma warning restore IDE1006

    private LlamaModel(ModelConfig config, IWeightSource w, Device device, ScalarType dtype) : base("LlamaForCausalLM")
    {
        if (config.ModelType is not ("llama" or "qwen2"))
            throw new NotSupportedException($"model_type '{config.ModelType}' is not supported (llama, qwen2).");
        if (config.NumHeads % config.NumKvHeads != 0)
            throw new ArgumentException($"num_attention_heads ({config.NumHeads}) must be a multiple of num_key_value_heads ({config.NumKvHeads}).");
        Config = config;
        Device = device;
        Dtype = dtype;
        Rope = new RotaryEmbedding(config, device, dtype);
        model = new LlamaBackbone(w, config, Rope, dtype, device);
        if (!config.TieWordEmbeddings)
            lm_head = new Linear(w, "lm_head", config.HiddenSize, config.VocabSize, false, dtype, device);
        Scale = 1.0 / Math.Sqrt(config.HeadDim);
        RegisterComponents();
    }

    public ModelConfig Config { get; }
    public Device Device { get; }
    public ScalarType Dtype { get; }
    public RotaryEmbedding Rope { get; }
    public IReadOnlyList<DecoderLayer> Layers => model.Layers;

    /// <summary>Softmax scale, 1/sqrt(head_dim).</summary>
    public double Scale { get; }

    public static LlamaModel FromWeights(ModelConfig config, IWeightSource weights, Device device, ScalarType dtype)
    {
        TorchRuntimeCheck(device);
        using var noGrad = no_grad();
        return new LlamaModel(config, weights, device, dtype);
    }

    /// <summary>Loads a Hugging Face folder's weights (see Loading.ModelFolder for config and tokenizer).</summary>
    public static LlamaModel FromCheckpoint(ModelConfig config, Loading.CheckpointWeights weights, Device device, ScalarType dtype) =>
        FromWeights(config, new CheckpointWeightSource(weights), device, dtype);

    /// <summary>Random weights generated on the device (benchmarks at real shapes).</summary>
    public static LlamaModel CreateRandom(ModelConfig config, Device device, ScalarType dtype, long seed)
    {
        using var weights = new RandomWeights(device, seed);
        return FromWeights(config, weights, device, dtype);
    }

    /// <summary>A KV cache sized for this model.</summary>
    public KvCache CreateCache(long batch, long capacity) => new(Config, batch, capacity, Device, Dtype);

    /// <summary>[B, S] int64 -> [B, S, hidden].</summary>
    public Tensor Embed(Tensor tokenIds) => model.embed_tokens.Forward(tokenIds);

    /// <summary>Final RMSNorm and lm_head: hidden [B, S, hidden] -> logits [B, S, vocab] in fp32.</summary>
    public Tensor Logits(Tensor hidden)
    {
        var normed = model.norm.Forward(hidden);
        var logits = lm_head is null ? nn.functional.linear(normed, model.embed_tokens.Weight) : lm_head.Forward(normed);
        return logits.to(ScalarType.Float32);
    }

    /// <summary>
    /// Dense causal forward of tokenIds [B, S] at positions cache.Length.. (0.. without a cache).
    /// With a cache, the new keys/values are appended and attention covers everything cached.
    /// Returns fp32 logits [B, S, vocab], or [B, 1, vocab] for the last position only
    /// (prefill of long prompts must not materialise S x vocab logits).
    /// </summary>
    public Tensor Forward(Tensor tokenIds, KvCache? cache = null, bool lastPositionOnly = false)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var hidden = ForwardHidden(tokenIds, cache);
        if (lastPositionOnly) hidden = hidden.narrow(1, hidden.shape[1] - 1, 1);
        return Logits(hidden).MoveToOuterDisposeScope();
    }

    /// <summary>The decoder stack without the final norm: [B, S] -> hidden [B, S, hidden].
    /// Call inside your own no_grad and dispose scope.</summary>
    public Tensor ForwardHidden(Tensor tokenIds, KvCache? cache = null)
    {
        if (tokenIds.dim() != 2) throw new ArgumentException($"tokenIds must be [B, S], got [{string.Join(", ", tokenIds.shape)}].");
        if (cache != null && cache.Batch != tokenIds.shape[0])
            throw new ArgumentException($"KV cache batch {cache.Batch} differs from the input batch {tokenIds.shape[0]}.");
        long past = cache?.Length ?? 0, s = tokenIds.shape[1];
        Rope.EnsureCapacity(past + s);
        var ids = tokenIds.device.type == Device.type && tokenIds.dtype == ScalarType.Int64 ? tokenIds : tokenIds.to(ScalarType.Int64, Device);
        var positions = TorchConstants.Positions(past, past + s, Device);
        var h = Embed(ids);
        return RunLayers(h, Rope.Angles(positions, h.dtype), new CachedAttention(cache, Scale));
    }

    /// <summary>
    /// The decoder loop every path runs (dense forward, each parallel strategy's prefill, Phase 2, batched decode,
    /// training targets): per layer project, let <paramref name="attention"/> attend, finish (o_proj, MLP, residuals).
    /// h [B, S, hidden] with the rows' rotary angles (<see cref="RotaryEmbedding.Angles"/>, gathered once for all
    /// layers) -> final hidden [B, S, hidden] before the final norm. Call inside no_grad and your own dispose scope.
    /// <paramref name="h"/> is consumed: it is freed once the first layer is done (at long prompts it is GBs).
    /// </summary>
    /// <param name="onLayer">Called after each layer with (layers done, layers): progress, and a place to cancel.</param>
    /// <param name="runner">Runs the layers' dense parts (batched with other sequences); null: this call runs them.</param>
    public Tensor RunLayers(Tensor h, RopeAngles angles, IAttentionBackend attention, PhaseTimer? timer = null, Action<int, int>? onLayer = null,
        ILayerRunner? runner = null)
    {
        timer ??= PhaseTimer.Disabled;
        var layers = Layers;
        for (int i = 0; i < layers.Count; i++)
        {
            // Per-layer scope: a layer's intermediates (GBs at long prompts) are freed before the next layer.
            using var layerScope = NewDisposeScope();
            QkvProjection p;
            using (timer.Measure(PhaseTimer.Qkv)) p = runner?.Project(layers[i], h, angles) ?? layers[i].Project(h, angles);
            var attn = attention.Attend(i, h, p);
            var previous = h;
            using (timer.Measure(PhaseTimer.Mlp))
                h = (runner?.Finish(layers[i], h, attn) ?? layers[i].Finish(h, attn)).MoveToOuterDisposeScope();
            previous.Dispose();
            onLayer?.Invoke(i + 1, layers.Count);
        }
        return h;
    }

    private static void TorchRuntimeCheck(Device device) =>
        NativeInterop.TorchRuntime.EnsureLoaded(device.type == DeviceType.CUDA ? device.ToString() : "cpu");

    protected override void Dispose(bool disposing)
    {
        if (disposing) Rope.Dispose();
        base.Dispose(disposing);
    }
}
