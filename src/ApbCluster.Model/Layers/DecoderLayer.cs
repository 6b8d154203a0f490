using ApbCluster.Model.Config;
using TorchSharp;
using static TorchSharp.torch;

namespace ApbCluster.Model.Layers;

/// <summary>q/k/v of one layer, [B,S,H,D]. *Pre are before RoPE; V is never rotated (VPre is V).</summary>
public sealed record QkvProjection(Tensor QPre, Tensor KPre, Tensor VPre, Tensor Q, Tensor K, Tensor V);

/// <summary>
/// One pre-norm decoder block, split at the attention so that parallel strategies can attend their own way:
/// <c>var p = layer.Project(h, positions); var o = attend(p.Q, keys, values); h = layer.Finish(h, o);</c>
/// </summary>
public sealed class DecoderLayer : nn.Module
{
#pragma warning disable IDE1006
    private readonly RmsNorm input_layernorm, post_attention_layernorm;
    private readonly SelfAttention self_attn;
    private readonly Mlp mlp;
#pragma warning restore IDE1006
    private readonly RotaryEmbedding _rope;

    public DecoderLayer(IWeightSource w, int index, ModelConfig c, RotaryEmbedding rope, ScalarType dtype, Device device)
        : base($"model.layers.{index}")
    {
        Index = index;
        _rope = rope;
        string prefix = $"model.layers.{index}";
        self_attn = new SelfAttention(w, prefix + ".self_attn", c, dtype, device);
        mlp = new Mlp(w, prefix + ".mlp", c, dtype, device);
        input_layernorm = new RmsNorm(w, prefix + ".input_layernorm", c.HiddenSize, c.RmsNormEps, dtype, device);
        post_attention_layernorm = new RmsNorm(w, prefix + ".post_attention_layernorm", c.HiddenSize, c.RmsNormEps, dtype, device);
        RegisterComponents();
    }

    public int Index { get; }

    /// <summary>Input RMSNorm, q/k/v projections, RoPE at <paramref name="positions"/> ([S] int64, global positions).</summary>
    public QkvProjection Project(Tensor hidden, Tensor positions)
    {
        var (cos, sin) = _rope.CosSin(positions, hidden.dtype);
        return Project(hidden, cos, sin);
    }

    /// <summary>As above with cos/sin from <see cref="RotaryEmbedding.CosSin"/>, gathered once per forward
    /// for all layers (saves two gathers per layer in a decode step).</summary>
    public QkvProjection Project(Tensor hidden, Tensor cos, Tensor sin)
    {
        var (q, k, v) = self_attn.Project(input_layernorm.Forward(hidden));
        return new QkvProjection(q, k, v, Rotate(q, cos, sin), Rotate(k, cos, sin), v);
    }

    /// <summary>o_proj(attentionOut [B,S,Hq,D]) + residual, then post-attention RMSNorm, MLP, + residual.</summary>
    public Tensor Finish(Tensor hidden, Tensor attentionOut)
    {
        var h = TorchConstants.Plus(hidden, self_attn.Output(attentionOut));
        return TorchConstants.Plus(h, mlp.Forward(post_attention_layernorm.Forward(h)));
    }

    // Same maths as RotaryEmbedding.Apply, sharing one cos/sin gather between q and k.
    private static Tensor Rotate(Tensor x, Tensor cos, Tensor sin)
    {
        long half = x.shape[^1] / 2;
        var rotated = cat([x.narrow(-1, half, half).neg(), x.narrow(-1, 0, half)], -1);
        return TorchConstants.Plus(x * cos, rotated * sin);
    }
}
