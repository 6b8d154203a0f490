using ApbCluster.Model.Config;
using TorchSharp;
using static TorchSharp.torch;

namespace ApbCluster.Model.Layers;

/// <summary>The attention block's weights (HF names q_proj, k_proj, v_proj, o_proj), with q, k and v stacked for one
/// matmul (the HF parameters are views of that stack). The maths is <see cref="LayerKernels"/>'; the attention itself
/// is an <see cref="Forward.IAttentionBackend"/>'s.</summary>
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

    internal FusedProjection Qkv => _qkv;

    internal Tensor OutWeight => o_proj.Weight;

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
