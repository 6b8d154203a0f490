using ApbCluster.Model.Config;
using TorchSharp;
using static TorchSharp.torch;

namespace ApbCluster.Model.Layers;

/// <summary>The attention block's projections (HF names q_proj, k_proj, v_proj, o_proj). The attention
/// itself is not here: dense, ring, ulysses and APB strategies each attend differently over the same q/k/v.</summary>
public sealed class SelfAttention : nn.Module
{
#pragma warning disable IDE1006
    private readonly Linear q_proj, k_proj, v_proj, o_proj;
#pragma warning restore IDE1006
    private readonly ModelConfig _config;

    public SelfAttention(IWeightSource w, string prefix, ModelConfig c, ScalarType dtype, Device device) : base(prefix)
    {
        _config = c;
        long qDim = (long)c.NumHeads * c.HeadDim, kvDim = (long)c.NumKvHeads * c.HeadDim;
        q_proj = new Linear(w, prefix + ".q_proj", c.HiddenSize, qDim, c.AttentionBias, dtype, device);
        k_proj = new Linear(w, prefix + ".k_proj", c.HiddenSize, kvDim, c.AttentionBias, dtype, device);
        v_proj = new Linear(w, prefix + ".v_proj", c.HiddenSize, kvDim, c.AttentionBias, dtype, device);
        o_proj = new Linear(w, prefix + ".o_proj", qDim, c.HiddenSize, false, dtype, device);
        RegisterComponents();
    }

    /// <summary>q [B,S,Hq,D], k and v [B,S,Hkv,D] from normed hidden [B,S,hidden], before RoPE.</summary>
    public (Tensor Q, Tensor K, Tensor V) Project(Tensor x)
    {
        long b = x.shape[0], s = x.shape[1];
        var q = q_proj.Forward(x).view(b, s, _config.NumHeads, _config.HeadDim);
        var k = k_proj.Forward(x).view(b, s, _config.NumKvHeads, _config.HeadDim);
        var v = v_proj.Forward(x).view(b, s, _config.NumKvHeads, _config.HeadDim);
        return (q, k, v);
    }

    /// <summary>o_proj of attention output [B,S,Hq,D] -> [B,S,hidden].</summary>
    public Tensor Output(Tensor attentionOut)
    {
        long b = attentionOut.shape[0], s = attentionOut.shape[1];
        return o_proj.Forward(attentionOut.reshape(b, s, (long)_config.NumHeads * _config.HeadDim));
    }
}
