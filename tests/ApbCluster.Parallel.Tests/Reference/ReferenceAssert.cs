using Xunit;
using static TorchSharp.torch;

namespace ApbCluster.Parallel.Tests.Reference;

internal static class ReferenceAssert
{
    /// <summary>fp32 engine results against the float64 reference: the tolerance covers fp32 rounding only.</summary>
    public const double Tol = 1e-5;

    /// <summary><paramref name="actual"/> (any dtype, batch dim allowed) equals <paramref name="expected"/> within <see cref="Tol"/>.</summary>
    public static void Close(Tensor actual, Tensor expected, string what)
    {
        var a = actual.detach().cpu().to(ScalarType.Float64).reshape(expected.shape);
        var diff = a.numel() == 0 ? 0 : (a - expected).abs().max().item<double>();
        Assert.True(a.allclose(expected, rtol: Tol, atol: Tol), $"{what}: max |diff| = {diff:E2}");
    }
}
