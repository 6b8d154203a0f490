using ApbCluster.Parallel.Kernels;
using ApbCluster.Parallel.Tests.Apb;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace ApbCluster.Parallel.Tests.Gpu;

/// <summary>
/// The APB mask on the GPU kernels (bf16): both kernels against the explicit-mask float64 reference.
/// Guards the kernels' causal alignment (cuDNN top-left for square blocks of 4,096+ queries, flash bottom-right), which
/// the CPU tests cannot see.
/// </summary>
[Trait("Category", "Gpu")]
[Collection(GpuCollection.Name)]
public class ApbAttentionGpuTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(96, 64, 160, 32, 8)]
    [InlineData(0, 64, 128, 8, 8)]
    [InlineData(128, 0, 192, 16, 4)]
    [InlineData(512, 1024, 4096, 4, 1)] // blocks of 4,096+ queries: cuDNN (smaller ones run on flash)
    public void Both_kernels_match_the_explicit_mask_in_bf16(int lp, int la, int ll, int hq, int hkv)
    {
        Assert.SkipUnless(GpuAvailability.DeviceCount >= 1, GpuAvailability.SkipReason);
        var gpu = new Device(DeviceType.CUDA, 0);
        manual_seed(3);
        int d = 128;
        double scale = 1 / Math.Sqrt(d);
        var q = randn(1, la + ll, hq, d);
        var k = randn(1, la + ll, hkv, d);
        var v = randn(1, la + ll, hkv, d);
        var pk = randn(1, lp, hkv, d);
        var pv = randn(1, lp, hkv, d);
        var (ro, _) = ApbAttentionTests.MaskedReference(q, cat([pk, k], 1), cat([pv, v], 1), ApbAttentionTests.ExplicitMask(lp, la, ll), scale);
        Tensor Bf(Tensor t) => t.to(ScalarType.BFloat16).to(gpu);
        foreach (var kernel in Enum.GetValues<ApbKernel>())
        {
            var (o, _) = ApbAttention.Attend(Bf(q), Bf(k), Bf(v), la, lp > 0 ? Bf(pk) : null, lp > 0 ? Bf(pv) : null, scale, kernel);
            double err = (o.cpu().to(ScalarType.Float64) - ro).abs().max().item<double>();
            output.WriteLine($"{kernel}: max abs error {err:E2}");
            Assert.True(err < 3e-2, $"{kernel} kernel: max abs error {err:E2} against the explicit mask");
        }
    }
}
