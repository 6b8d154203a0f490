using static TorchSharp.torch;

namespace ApbCluster.Parallel.Tests;

internal static class TensorAssert
{
    /// <summary>Same shape, dtype and values (compared on the CPU).</summary>
    public static bool Same(this Tensor a, Tensor b) =>
        a.shape.SequenceEqual(b.shape) && a.dtype == b.dtype && a.cpu().eq(b.cpu()).all().item<bool>();
}
