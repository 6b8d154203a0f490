using ApbCluster.Model.Attention;
using Xunit;
using static TorchSharp.torch;

namespace ApbCluster.Model.Tests.Gpu;

/// <summary>The one-call ragged decode kernel (varlen flash with per-sequence used lengths) against one fused call per
/// sequence, on slots taken out of order with different lengths.</summary>
[Trait("Category", "Gpu")]
public class RaggedAttentionGpuTests
{
    [Fact]
    public void One_varlen_call_equals_a_fused_call_per_sequence()
    {
        Assert.SkipUnless(GpuAvailability.Available, GpuAvailability.Reason);
        manual_seed(3);
        const long capacity = 700, d = 128;
        var keys = randn(5, capacity, 8, d).to(ScalarType.BFloat16).cuda();
        var values = randn(5, capacity, 8, d).to(ScalarType.BFloat16).cuda();
        int[] slots = [3, 0, 4];
        long[] lengths = [513, 1, 700];
        var q = randn(slots.Length, 1, 32, d).to(ScalarType.BFloat16).cuda();
        using var rows = new RaggedRows(slots, lengths, capacity, q.device);
        double scale = 1 / Math.Sqrt(d);
        var (o, lse) = FusedAttention.AttendRagged(q, keys, values, rows, scale);
        Assert.Null(FusedAttention.RaggedKernelDisabledBecause);
        for (int i = 0; i < slots.Length; i++)
        {
            var (ro, rlse) = FusedAttention.Attend(q.narrow(0, i, 1), keys.narrow(0, slots[i], 1).narrow(1, 0, lengths[i]),
                values.narrow(0, slots[i], 1).narrow(1, 0, lengths[i]), causal: false, scale);
            double outErr = (o.narrow(0, i, 1) - ro).abs().max().to(ScalarType.Float32).cpu().item<float>();
            double lseErr = (lse.narrow(0, i, 1) - rlse).abs().max().cpu().item<float>();
            Assert.True(outErr < 2e-2, $"sequence {i} (slot {slots[i]}, {lengths[i]} keys): out differs by {outErr}");
            Assert.True(lseErr < 1e-3, $"sequence {i}: lse differs by {lseErr}");
        }
    }
}
