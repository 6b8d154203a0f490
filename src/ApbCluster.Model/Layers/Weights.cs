using TorchSharp;
using static TorchSharp.torch;

namespace ApbCluster.Model.Layers;

/// <summary>Turns loaded tensors into inference parameters that outlive any dispose scope.</summary>
internal static class Weights
{
    public static TorchSharp.Modules.Parameter Load(IWeightSource source, string name, long[] shape, ScalarType dtype, Device device)
    {
        var t = source.Load(name, shape, dtype, device);
        if (!t.shape.SequenceEqual(shape))
            throw new InvalidOperationException($"weight '{name}' has shape [{string.Join(", ", t.shape)}], expected [{string.Join(", ", shape)}].");
        if (t.dtype != dtype || t.device.type != device.type) t = t.to(dtype, device);
        var p = new TorchSharp.Modules.Parameter(t, requires_grad: false);
        p.DetachFromDisposeScope();
        return p;
    }
}
