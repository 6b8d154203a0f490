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
    // A field, not an implicit conversion per call: TorchSharp passes a temporary Scalar's native handle and a GC
    // may free the Scalar before the native op has read it (the hazard FusedAttention documents).
    private readonly Scalar _eps;

    public RmsNorm(IWeightSource w, string prefix, long size, double eps, ScalarType dtype, Device device) : base(prefix)
    {
        weight = Weights.Load(w, prefix + ".weight", [size], dtype, device);
        _eps = eps.ToScalar();
        RegisterComponents();
    }

    public Tensor Forward(Tensor x)
    {
        var xf = x.to(ScalarType.Float32);
        var variance = xf.square().mean([-1], keepdim: true);
        var normed = xf * rsqrt(variance.add_(_eps));
        return weight * normed.to(x.dtype);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) _eps.Dispose();
        base.Dispose(disposing);
    }
}
