using TorchSharp;
using static TorchSharp.torch;

namespace ApbCluster.Model.Layers;

/// <summary>y = x Wᵀ + b, with HF's parameter names "weight" [out, in] and optional "bias" [out].</summary>
public sealed class Linear : nn.Module
{
#pragma warning disable IDE1006 // field names are the HF parameter names
    private readonly TorchSharp.Modules.Parameter weight;
    private readonly TorchSharp.Modules.Parameter? bias;
#pragma warning restore IDE1006

    public Linear(IWeightSource w, string prefix, long inFeatures, long outFeatures, bool hasBias, ScalarType dtype, Device device)
        : base(prefix)
    {
        weight = Weights.Load(w, prefix + ".weight", [outFeatures, inFeatures], dtype, device);
        if (hasBias) bias = Weights.Load(w, prefix + ".bias", [outFeatures], dtype, device);
        RegisterComponents();
    }

    /// <summary>A Linear over tensors already loaded (views of a fused weight: see <see cref="Weights.Fuse"/>).</summary>
    internal Linear(string prefix, Tensor weight, Tensor? bias) : base(prefix)
    {
        this.weight = Weights.Parameter(weight);
        if (bias is not null) this.bias = Weights.Parameter(bias);
        RegisterComponents();
    }

    public Tensor Weight => weight;

    public Tensor? Bias => bias;

    public Tensor Forward(Tensor x) => nn.functional.linear(x, weight, bias);
}
