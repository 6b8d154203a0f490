using ApbCluster.Model.Attention;
using ApbCluster.Model.Tests.Attention;
using Xunit;
using static TorchSharp.torch;

namespace ApbCluster.Model.Tests.Gpu;

/// <summary>The CUDA kernels (flash, cuDNN) against float64 attention, including their LSE layouts.</summary>
[Trait("Category", "Gpu")]
public class FusedAttentionGpuTests
{
    [Theory]
    [InlineData(300, 300, true, ScalarType.BFloat16)]   // square causal, small: flash
    [InlineData(200, 700, true, ScalarType.BFloat16)]   // bottom-right causal: flash
    [InlineData(200, 700, false, ScalarType.BFloat16)]  // non-causal, small: flash
    [InlineData(4096, 4096, true, ScalarType.BFloat16, 4)]  // square causal, a prefill block: cuDNN
    [InlineData(4096, 4500, false, ScalarType.BFloat16, 4)] // non-causal, a prefill block: cuDNN
    [InlineData(1, 513, true, ScalarType.BFloat16)]     // decode step
    [InlineData(256, 256, true, ScalarType.Float16)]
    [InlineData(300, 300, true, ScalarType.Float32)]    // fp32: memory-efficient kernel
    [InlineData(200, 700, true, ScalarType.Float32)]
    [InlineData(1, 33, true, ScalarType.Float32)]
    public void CudaKernelsMatchFloat64Attention(int sq, int sk, bool causal, ScalarType dtype, int heads = 32)
    {
        Assert.SkipUnless(GpuAvailability.Available, GpuAvailability.Reason);
        manual_seed(11);
        // Few heads for the large blocks: the float64 reference runs on the CPU.
        var q = randn(1, sq, heads, 128).to(dtype).cuda();
        var k = randn(1, sk, heads / 4, 128).to(dtype).cuda();
        var v = randn(1, sk, heads / 4, 128).to(dtype).cuda();
        var (o, lse) = FusedAttention.Attend(q, k, v, causal, 1 / Math.Sqrt(128));
        var (ro, rlse) = FusedAttentionTests.Reference(q.cpu(), k.cpu(), v.cpu(), causal, 1 / Math.Sqrt(128));
        double outErr = (o.cpu().to(ScalarType.Float64) - ro).abs().max().item<double>() / ro.abs().max().item<double>();
        double lseErr = (lse.cpu().to(ScalarType.Float64) - rlse).abs().max().item<double>();
        double tol = dtype == ScalarType.Float32 ? 1e-4 : 2e-2;
        Assert.True(outErr < tol, $"out relative error {outErr}");
        Assert.True(lseErr < tol, $"lse abs error {lseErr}");
    }
}
