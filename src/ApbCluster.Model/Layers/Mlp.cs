using ApbCluster.Model.Config;
using TorchSharp;
using static TorchSharp.torch;

namespace ApbCluster.Model.Layers;

/// <summary>SwiGLU feed-forward: down(silu(gate(x)) * up(x)); gate and up come from one matmul over their stacked
/// weights (the HF parameters gate_proj and up_proj are views of that stack).</summary>
public sealed class Mlp : nn.Module
{
#pragma warning disable IDE1006
    private readonly Linear gate_proj, up_proj, down_proj;
#pragma warning restore IDE1006
    private readonly FusedProjection _gateUp; // not a registered component: its memory is the two parameters'
    private readonly long _intermediate;

    public Mlp(IWeightSource w, string prefix, ModelConfig c, ScalarType dtype, Device device) : base(prefix)
    {
        if (!string.Equals(c.HiddenAct, "silu", StringComparison.Ordinal))
            throw new NotSupportedException($"hidden_act '{c.HiddenAct}' is not supported (only 'silu').");
        _intermediate = c.IntermediateSize;
        var gate = Weights.LoadTensor(w, prefix + ".gate_proj.weight", [c.IntermediateSize, c.HiddenSize], dtype, device);
        var up = Weights.LoadTensor(w, prefix + ".up_proj.weight", [c.IntermediateSize, c.HiddenSize], dtype, device);
        down_proj = new Linear(w, prefix + ".down_proj", c.IntermediateSize, c.HiddenSize, false, dtype, device);
        var (fused, parts) = Weights.Fuse(gate, up);
        _gateUp = new FusedProjection(fused, null);
        gate_proj = new Linear(prefix + ".gate_proj", parts[0], null);
        up_proj = new Linear(prefix + ".up_proj", parts[1], null);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x)
    {
        // In place and disposed as soon as used: at 128K tokens [S, 2 x intermediate] is ~7.5 GB in bf16.
        using var gateUp = nn.functional.linear(x, _gateUp.Weight);
        var gate = gateUp.narrow(-1, 0, _intermediate);
        nn.functional.silu(gate, inplace: true);
        gate.mul_(gateUp.narrow(-1, _intermediate, _intermediate));
        return down_proj.Forward(gate);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) _gateUp.Dispose();
        base.Dispose(disposing);
    }
}
