using ApbCluster.Model.Config;
using TorchSharp;
using static TorchSharp.torch;

namespace ApbCluster.Model.Layers;

/// <summary>q/k/v of one layer, [B,S,H,D]. *Pre are before RoPE; V is never rotated (VPre is V).</summary>
public sealed record QkvProjection(Tensor QPre, Tensor KPre, Tensor VPre, Tensor Q, Tensor K, Tensor V);

/// <summary>
/// One pre-norm decoder block, split at the attention so that parallel strategies can attend their own way:
/// <c>var p = layer.Project(h, angles); var o = attend(p.Q, keys, values); h = layer.Finish(h, o);</c>
/// <see cref="LlamaModel.RunLayers"/> is the loop that does this for every path.
/// </summary>
public sealed class DecoderLayer : nn.Module
{
#pragma warning disable IDE1006
    private readonly RmsNorm input_layernorm, post_attention_layernorm;
    private readonly SelfAttention self_attn;
    private readonly Mlp mlp;
#pragma warning restore IDE1006
    private readonly RotaryEmbedding _rope;
    private readonly Scalar _headsScalar, _kvHeadsScalar; // kept alive across the script calls (see FusedAttention)

    public DecoderLayer(IWeightSource w, int index, ModelConfig c, RotaryEmbedding rope, ScalarType dtype, Device device)
        : base($"model.layers.{index}")
    {
        Index = index;
        _rope = rope;
        _headsScalar = ((long)c.NumHeads).ToScalar();
        _kvHeadsScalar = ((long)c.NumKvHeads).ToScalar();
        string prefix = $"model.layers.{index}";
        self_attn = new SelfAttention(w, prefix + ".self_attn", c, dtype, device);
        mlp = new Mlp(w, prefix + ".mlp", c, dtype, device);
        input_layernorm = new RmsNorm(w, prefix + ".input_layernorm", c.HiddenSize, c.RmsNormEps, dtype, device);
        post_attention_layernorm = new RmsNorm(w, prefix + ".post_attention_layernorm", c.HiddenSize, c.RmsNormEps, dtype, device);
        RegisterComponents();
    }

    public int Index { get; }

    /// <summary>Input RMSNorm, q/k/v projections, RoPE at <paramref name="positions"/> ([S] int64, global positions).</summary>
    public QkvProjection Project(Tensor hidden, Tensor positions) => Project(hidden, _rope.Angles(positions, hidden.dtype));

    /// <summary>As above with the angles from <see cref="RotaryEmbedding.Angles"/>, gathered once per forward for all
    /// layers. q, k and v come from one matmul and q and k are rotated together (a decode step is launch-bound); all six
    /// tensors are views with strided rows: copy what you keep past the layer.</summary>
    public QkvProjection Project(Tensor hidden, RopeAngles angles)
    {
        var (qPre, kPre, v, q, k) = LayerKernels.Project(hidden, input_layernorm.Weight, input_layernorm.Eps, self_attn.Qkv.Weight, self_attn.Qkv.Bias,
            angles, _headsScalar, _kvHeadsScalar);
        return new QkvProjection(qPre, kPre, v, q, k, v);
    }

    /// <summary>o_proj(attentionOut [B,S,Hq,D]) + residual, then post-attention RMSNorm, MLP, + residual.</summary>
    public Tensor Finish(Tensor hidden, Tensor attentionOut) =>
        LayerKernels.Finish(hidden, attentionOut, self_attn.OutWeight, post_attention_layernorm.Weight, post_attention_layernorm.Eps,
            mlp.GateUpWeight, mlp.DownWeight);

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _headsScalar.Dispose();
            _kvHeadsScalar.Dispose();
        }
        base.Dispose(disposing);
    }
}
