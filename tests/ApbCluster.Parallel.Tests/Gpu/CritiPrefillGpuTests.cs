using ApbCluster.Parallel.Kernels;
using ApbCluster.Parallel.Tests.Apb;
using ApbCluster.Parallel.Tests.Criti;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace ApbCluster.Parallel.Tests.Gpu;

/// <summary>CritiPrefill's estimation and batched attention on the GPU kernels (bf16, flash's batched GQA call with one
/// KV head per batch entry) against the float64 explicit mask of the selection it made.</summary>
[Trait("Category", "Gpu")]
[Collection(GpuCollection.Name)]
public class CritiPrefillGpuTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(2048, 8, 2, 0)]
    [InlineData(2000, 8, 8, 512)]
    public void PrunedAttentionMatchesTheSelectionsMaskInBf16(int rows, int hq, int hkv, int threshold)
    {
        Assert.SkipUnless(GpuAvailability.DeviceCount >= 1, GpuAvailability.SkipReason);
        var gpu = new Device(DeviceType.CUDA, 0);
        manual_seed(5);
        int d = 128;
        double scale = 1 / Math.Sqrt(d);
        var q = randn(1, rows, hq, d);
        var k = randn(1, rows, hkv, d);
        var v = randn(1, rows, hkv, d);
        var options = new CritiPrefillOptions { Segment = 256, Block = 32, Budget = 512, Threshold = threshold };
        var layout = CritiPrefillLayout.For(rows, 0, options);
        Tensor Bf(Tensor t) => t.to(ScalarType.BFloat16).to(gpu);
        using var state = new CritiPrefillState(options);
        var selection = CritiPrefillCriticality.Select(Bf(q), Bf(k), layout, state, 0);
        var blocks = CritiPrefillReference.ToArrays(selection.Blocks!.cpu());
        for (int m = 0; m < blocks.Length; m++)
            Assert.All(blocks[m].SelectMany(h => h), b => Assert.True((b + 1) * options.Block <= (layout.FirstPruned + m) * options.Segment));
        var (o, _) = CritiPrefillAttention.Attend(Bf(q), Bf(k), Bf(v), selection, scale);
        var (ro, _) = ApbAttentionTests.MaskedReference(q, k, v, CritiPrefillReference.Mask(layout, blocks, hq, hkv), scale);
        double err = (o.cpu().to(ScalarType.Float64) - ro).abs().max().item<double>();
        output.WriteLine($"{layout.PrunedSegments} pruned segments: max abs error {err:E2}");
        Assert.True(err < 3e-2, $"max abs error {err:E2} against the selection's mask");
    }
}
