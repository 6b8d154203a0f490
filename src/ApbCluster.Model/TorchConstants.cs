using TorchSharp;
using static TorchSharp.torch;

namespace ApbCluster.Model;

/// <summary>
/// Scalars that outlive the native calls they are passed to. TorchSharp turns a C# number used with a tensor into a
/// <c>Scalar</c> (even <c>a + b</c> is <c>add(b, alpha: 1)</c>, and <c>arange(0, n)</c> makes two) and leaves it to
/// the finalizer, which can free it while libtorch still reads it when a GC runs meanwhile: "INTERNAL ASSERT FAILED
/// at c10/core/Scalar.h" or "Expected false to be true" (dotnet/TorchSharp#1434; 4 runs in 19,200 of the CPU
/// accuracy table died so). Hot paths pass these, or Scalars they dispose after the call, instead.
/// </summary>
public static class TorchConstants
{
    public static readonly Scalar One = 1.ToScalar();
    public static readonly Scalar MinusInfinity = double.NegativeInfinity.ToScalar();

    /// <summary><c>a + b</c> without a temporary alpha.</summary>
    public static Tensor Plus(Tensor a, Tensor b) => a.add(b, One);

    /// <summary>Int64 positions [start, stop) on <paramref name="device"/>, the bounds kept alive across the call.</summary>
    public static Tensor Positions(long start, long stop, Device device)
    {
        using var from = start.ToScalar();
        using var to = stop.ToScalar();
        return arange(from, to, One, dtype: ScalarType.Int64, device: device);
    }
}
