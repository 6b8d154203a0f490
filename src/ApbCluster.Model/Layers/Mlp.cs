using ApbCluster.Model.Config;
using TorchSharp;
using static TorchSharp.torch;

namespace ApbCluster.Model.Layers;

/// <summary>The SwiGLU feed-forward's weights, down(silu(gate(x)) * up(x)), with gate and up stacked for one matmul (the
/// HF parameters gate_proj and up_proj are views of that stack). The maths is <see cref="LayerKernels"/>'.</summary>
public sealed class Mlp : nn.Module
{
#pragma warning disable IDE1006
    private readonly Linear gate_proj, up_proj, down_proj;
#pragma warning restore IDE1006
    private readonly FusedProjection _gateUp; // not a registered component: its memory is the two parameters'

    public Mlp(IWeightSource w, string prefix, ModelConfig c, ScalarType dtype, Device device) : base(prefix)
    {
        if (!string.Equals(c.HiddenAct, "silu", StringComparison.Ordinal))
            throw new NotSupportedException($"hidden_act '{c.HiddenAct}' is not supported (only 'silu').");
        var gate = Weights.LoadTensor(w, prefix + ".gate_proj.weight", [c.IntermediateSize, c.HiddenSize], dtype, device);
        var up = Weights.LoadTensor(w, prefix + ".up_proj.weight", [c.IntermediateSize, c.HiddenSize], dtype, device);
        down_proj = new Linear(w, prefix + ".down_proj", c.IntermediateSize, c.HiddenSize, false, dtype, device);
        var (fused, parts) = Weights.Fuse(gate, up);
        _gateUp = new FusedProjection(fused, null);
        gate_proj = new Linear(prefix + ".gate_proj", parts[0], null);
        up_proj = new Linear(prefix + ".up_proj", parts[1], null);
        RegisterComponents();
    }

    internal Tensor GateUpWeight => _gateUp.Weight;

    internal Tensor DownWeight => down_proj.Weight;

    protected override void Dispose(bool disposing)
    {
        if (disposing) _gateUp.Dispose();
        base.Dispose(disposing);
    }
}
