using ApbCluster.Model.Config;
using TorchSharp;
using static TorchSharp.torch;

namespace ApbCluster.Model.Layers;

/// <summary>The attention block's projections (HF names q_proj, k_proj, v_proj, o_proj). The attention
/// itself is not here: dense, ring, ulysses and APB strategies each attend differently over the same q/k/v.
/// q, k and v come from one matmul over their stacked weights (the HF parameters are views of that stack).</summary>
public sealed class SelfAttention : nn.Module
{
#pragma warning disable IDE1006
    private readonly Linear q_proj, k_proj, v_proj, o_proj;
#pragma warning restore IDE1006
    private readonly ModelConfig _config;
    private readonly FusedProjection _qkv; // not a registered component: its memory is the three parameters'

    public SelfAttention(IWeightSource w, string prefix, ModelConfig c, ScalarType dtype, Device device) : base(prefix)
    {
        _config = c;
        long qDim = (long)c.NumHeads * c.HeadDim, kvDim = (long)c.NumKvHeads * c.HeadDim;
        var names = new[] { ".q_proj", ".k_proj", ".v_proj" };
        var outs = new[] { qDim, kvDim, kvDim };
        var weights = names.Select((n, i) => Weights.LoadTensor(w, prefix + n + ".weight", [outs[i], c.HiddenSize], dtype, device)).ToArray();
        var biases = c.AttentionBias
            ? names.Select((n, i) => Weights.LoadTensor(w, prefix + n + ".bias", [outs[i]], dtype, device)).ToArray()
            : null;
        o_proj = new Linear(w, prefix + ".o_proj", qDim, c.HiddenSize, false, dtype, device);
        var (fusedWeight, weightParts) = Weights.Fuse(weights);
        var (fusedBias, biasParts) = biases is null ? (null, null) : Weights.Fuse(biases);
        _qkv = new FusedProjection(fusedWeight, fusedBias);
        q_proj = new Linear(prefix + ".q_proj", weightParts[0], biasParts?[0]);
        k_proj = new Linear(prefix + ".k_proj", weightParts[1], biasParts?[1]);
        v_proj = new Linear(prefix + ".v_proj", weightParts[2], biasParts?[2]);
        RegisterComponents();
    }

    /// <summary>q [B,S,Hq,D], k and v [B,S,Hkv,D] from normed hidden [B,S,hidden], before RoPE. They are views of one
    /// [B,S,Hq+2Hkv,D] tensor (rows not contiguous): copy what you keep past the step.</summary>
    public (Tensor Q, Tensor K, Tensor V) Project(Tensor x)
    {
        var heads = ProjectHeads(x);
        int hq = _config.NumHeads, hkv = _config.NumKvHeads;
        return (heads.narrow(2, 0, hq), heads.narrow(2, hq, hkv), heads.narrow(2, hq + hkv, hkv));
    }

    /// <summary>The stacked projection [B,S,Hq+2Hkv,D]: q heads, then k heads, then v heads.</summary>
    public Tensor ProjectHeads(Tensor x)
    {
        long b = x.shape[0], s = x.shape[1];
        return nn.functional.linear(x, _qkv.Weight, _qkv.Bias).view(b, s, _config.NumHeads + 2L * _config.NumKvHeads, _config.HeadDim);
    }

    /// <summary>o_proj of attention output [B,S,Hq,D] -> [B,S,hidden].</summary>
    public Tensor Output(Tensor attentionOut)
    {
        long b = attentionOut.shape[0], s = attentionOut.shape[1];
        return o_proj.Forward(attentionOut.reshape(b, s, (long)_config.NumHeads * _config.HeadDim));
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) _qkv.Dispose();
        base.Dispose(disposing);
    }
}

/// <summary>A stacked weight (and bias) whose rows are several HF projections'.</summary>
internal sealed class FusedProjection(Tensor weight, Tensor? bias) : IDisposable
{
    public Tensor Weight { get; } = weight;
    public Tensor? Bias { get; } = bias;

    public void Dispose()
    {
        Weight.Dispose();
        Bias?.Dispose();
    }
}
