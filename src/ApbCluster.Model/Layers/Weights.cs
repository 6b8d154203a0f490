using TorchSharp;
using static TorchSharp.torch;

namespace ApbCluster.Model.Layers;

/// <summary>Turns loaded tensors into inference parameters that outlive any dispose scope.</summary>
internal static class Weights
{
    public static TorchSharp.Modules.Parameter Load(IWeightSource source, string name, long[] shape, ScalarType dtype, Device device) =>
        Parameter(LoadTensor(source, name, shape, dtype, device));

    /// <summary>The named weight, checked for shape, in <paramref name="dtype"/> on <paramref name="device"/>.</summary>
    public static Tensor LoadTensor(IWeightSource source, string name, long[] shape, ScalarType dtype, Device device)
    {
        var t = source.Load(name, shape, dtype, device);
        if (!t.shape.SequenceEqual(shape))
            throw new InvalidOperationException($"weight '{name}' has shape [{string.Join(", ", t.shape)}], expected [{string.Join(", ", shape)}].");
        return t.dtype != dtype || t.device.type != device.type ? t.to(dtype, device) : t;
    }

    /// <summary>An inference parameter over <paramref name="t"/> (a view keeps sharing its storage).</summary>
    public static TorchSharp.Modules.Parameter Parameter(Tensor t)
    {
        var p = new TorchSharp.Modules.Parameter(t, requires_grad: false);
        p.DetachFromDisposeScope();
        return p;
    }

    /// <summary>
    /// Stacks weights [out_i, in] into one [sum out_i, in] tensor and returns it with a view of each part in order.
    /// One matmul over the stack replaces one per part (a decode step is launch-bound); the views keep the HF names
    /// as parameters over the same memory, so nothing is held twice.
    /// </summary>
    public static (Tensor Fused, Tensor[] Parts) Fuse(params Tensor[] parts)
    {
        var fused = cat(parts, 0);
        fused.DetachFromDisposeScope();
        var views = new Tensor[parts.Length];
        long at = 0;
        for (int i = 0; i < parts.Length; i++)
        {
            long rows = parts[i].shape[0];
            views[i] = fused.narrow(0, at, rows);
            at += rows;
            parts[i].Dispose();
        }
        return (fused, views);
    }
}
