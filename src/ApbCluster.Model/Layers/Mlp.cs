using ApbCluster.Model.Config;
using TorchSharp;
using static TorchSharp.torch;

namespace ApbCluster.Model.Layers;

/// <summary>SwiGLU feed-forward: down(silu(gate(x)) * up(x)).</summary>
public sealed class Mlp : nn.Module
{
#pragma warning disable IDE1006
    private readonly Linear gate_proj, up_proj, down_proj;
#pragma warning restore IDE1006

    public Mlp(IWeightSource w, string prefix, ModelConfig c, ScalarType dtype, Device device) : base(prefix)
    {
        if (!string.Equals(c.HiddenAct, "silu", StringComparison.Ordinal))
            throw new NotSupportedException($"hidden_act '{c.HiddenAct}' is not supported (only 'silu').");
        gate_proj = new Linear(w, prefix + ".gate_proj", c.HiddenSize, c.IntermediateSize, false, dtype, device);
        up_proj = new Linear(w, prefix + ".up_proj", c.HiddenSize, c.IntermediateSize, false, dtype, device);
        down_proj = new Linear(w, prefix + ".down_proj", c.IntermediateSize, c.HiddenSize, false, dtype, device);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x)
    {
        // In place and disposed as soon as used: at 128K tokens each [S, intermediate] tensor is ~3.7 GB in bf16.
        using var gate = gate_proj.Forward(x);
        nn.functional.silu(gate, inplace: true);
        using (var up = up_proj.Forward(x)) gate.mul_(up);
        return down_proj.Forward(gate);
    }
}
