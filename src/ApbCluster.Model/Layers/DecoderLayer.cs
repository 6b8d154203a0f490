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
    private readonly int _heads, _kvHeads;

    public DecoderLayer(IWeightSource w, int index, ModelConfig c, RotaryEmbedding rope, ScalarType dtype, Device device)
        : base($"model.layers.{index}")
    {
        Index = index;
        _rope = rope;
        _heads = c.NumHeads;
        _kvHeads = c.NumKvHeads;
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
        var heads = self_attn.ProjectHeads(input_layernorm.Forward(hidden)); // [B, S, Hq + 2 Hkv, D]
        int hq = _heads, hkv = _kvHeads;
        var rotated = RotaryEmbedding.Rotate(heads.narrow(2, 0, hq + hkv), angles);
        var v = heads.narrow(2, hq + hkv, hkv);
        return new QkvProjection(heads.narrow(2, 0, hq), heads.narrow(2, hq, hkv), v,
            rotated.narrow(2, 0, hq), rotated.narrow(2, hq, hkv), v);
    }

    /// <summary>o_proj(attentionOut [B,S,Hq,D]) + residual, then post-attention RMSNorm, MLP, + residual.</summary>
    public Tensor Finish(Tensor hidden, Tensor attentionOut)
    {
        var h = TorchConstants.Plus(hidden, self_attn.Output(attentionOut));
        return TorchConstants.Plus(h, mlp.Forward(post_attention_layernorm.Forward(h)));
    }
}
