using ApbCluster.NativeInterop;
using ApbCluster.Parallel.Kernels;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace ApbCluster.Parallel.Tests.Apb;

public class ApbAttentionTests
{
    public ApbAttentionTests() => TorchRuntime.EnsureLoaded("cpu");

    /// <summary>The spec's table as an explicit boolean mask over keys [passing; anchor; local].</summary>
    internal static Tensor ExplicitMask(int lp, int la, int ll)
    {
        var m = zeros(la + ll, lp + la + ll, dtype: ScalarType.Bool);
        for (int r = 0; r < la + ll; r++)
            for (int c = 0; c < lp + la + ll; c++)
            {
                bool visible;
                if (r < la) visible = c >= lp && c < lp + la && c - lp <= r;            // anchor row: causal anchor only
                else visible = c < lp + la || c - lp - la <= r - la;                      // local row: passing, anchor, causal local
                m[r, c] = tensor(visible);
            }
        return m;
    }

    /// <summary>float64 masked attention, GQA by repeating KV heads. out [B,S,Hq,D], lse [B,Hq,S].</summary>
    internal static (Tensor Out, Tensor Lse) MaskedReference(Tensor q, Tensor k, Tensor v, Tensor mask, double scale)
    {
        long groups = q.shape[2] / k.shape[2];
        var qh = q.to(ScalarType.Float64).transpose(1, 2);
        var kh = k.to(ScalarType.Float64).repeat_interleave(groups, dim: 2).transpose(1, 2);
        var vh = v.to(ScalarType.Float64).repeat_interleave(groups, dim: 2).transpose(1, 2);
        var scores = (qh.matmul(kh.transpose(-1, -2)) * scale).masked_fill(mask.logical_not(), double.NegativeInfinity);
        var lse = scores.logsumexp(-1);
        return ((scores - lse.unsqueeze(-1)).exp().matmul(vh).transpose(1, 2), lse);
    }

    [Theory]
    [InlineData(3, 4, 6, 4, 2)]   // every row and key class
    [InlineData(0, 4, 6, 4, 4)]   // empty passing (host 1 without passing, or star)
    [InlineData(5, 0, 6, 8, 2)]   // l_a = 0
    [InlineData(0, 0, 7, 8, 1)]   // host 0: plain causal
    [InlineData(9, 5, 1, 4, 1)]   // a single local row
    public void MatchesTheExplicitMask(int lp, int la, int ll, int hq, int hkv)
    {
        manual_seed(11);
        int d = 8;
        double scale = 1 / Math.Sqrt(d);
        var q = randn(2, la + ll, hq, d);
        var k = randn(2, la + ll, hkv, d);
        var v = randn(2, la + ll, hkv, d);
        var pk = randn(2, lp, hkv, d);
        var pv = randn(2, lp, hkv, d);
        var (ro, rlse) = MaskedReference(q, cat([pk, k], 1), cat([pv, v], 1), ExplicitMask(lp, la, ll), scale);
        foreach (var kernel in Enum.GetValues<ApbKernel>())
        {
            var (o, lse) = ApbAttention.Attend(q, k, v, la, lp > 0 ? pk : null, lp > 0 ? pv : null, scale, kernel);
            Assert.True(o.to(ScalarType.Float64).allclose(ro, rtol: 1e-5, atol: 1e-5), $"{kernel} kernel: outputs differ");
            Assert.True(lse.to(ScalarType.Float64).allclose(rlse, rtol: 1e-5, atol: 1e-5), $"{kernel} kernel: lse differs");
        }
    }

    [Fact]
    public void TheMaskSeparatesTheRowClasses()
    {
        // Changing a passing or local key must not move anchor rows; changing a later local key must not move earlier local rows.
        manual_seed(5);
        int lp = 2, la = 3, ll = 4, d = 4;
        var q = randn(1, la + ll, 2, d);
        var k = randn(1, la + ll, 2, d);
        var v = randn(1, la + ll, 2, d);
        var pk = randn(1, lp, 2, d);
        var (o1, _) = ApbAttention.Attend(q, k, v, la, pk, pk, 0.5);
        var k2 = k.clone();
        k2[0, la + ll - 1] = k2[0, la + ll - 1] + 3;
        var (o2, _) = ApbAttention.Attend(q, k2, v, la, pk * 2, pk * 2, 0.5);
        Assert.True(o1.narrow(1, 0, la).allclose(o2.narrow(1, 0, la)));
        Assert.False(o1.narrow(1, la, 1).allclose(o2.narrow(1, la, 1))); // local rows see passing
        Assert.False(o1[0, la + ll - 1].allclose(o2[0, la + ll - 1]));
    }
}
