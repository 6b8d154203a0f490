using TorchSharp;
using static TorchSharp.torch;

namespace ApbCluster.Model.Layers;

/// <summary>
/// LlamaRMSNorm exactly as HF orders it: normalise in fp32, cast back to the input dtype,
/// then multiply by the weight (the cast before the multiply matters in bf16).
/// </summary>
public sealed class RmsNorm : nn.Module
{
#pragma warning disable IDE1006
    private readonly TorchSharp.Modules.Parameter weight;
#pragma warning restore IDE1006
    private readonly double _eps;

    public RmsNorm(IWeightSource w, string prefix, long size, double eps, ScalarType dtype, Device device) : base(prefix)
    {
        weight = Weights.Load(w, prefix + ".weight", [size], dtype, device);
        _eps = eps;
        RegisterComponents();
    }

    public Tensor Forward(Tensor x)
    {
        var xf = x.to(ScalarType.Float32);
        var variance = xf.pow(2).mean([-1], keepdim: true);
        var normed = xf * rsqrt(variance + _eps);
        return weight * normed.to(x.dtype);
    }
}
