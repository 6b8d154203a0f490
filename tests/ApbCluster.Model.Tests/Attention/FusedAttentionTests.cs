using ApbCluster.Model.Attention;
using ApbCluster.NativeInterop;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace ApbCluster.Model.Tests.Attention;

public class FusedAttentionTests
{
    public FusedAttentionTests() => TorchRuntime.EnsureLoaded("cpu");

    /// <summary>Explicit float64 attention with a bottom-right causal mask: out [B,Sq,H,D], lse [B,H,Sq].</summary>
    internal static (Tensor Out, Tensor Lse) Reference(Tensor q, Tensor k, Tensor v, bool causal, double scale)
    {
        long groups = q.shape[2] / k.shape[2], sq = q.shape[1], sk = k.shape[1];
        var qh = q.to(ScalarType.Float64).transpose(1, 2);
        var kh = k.to(ScalarType.Float64).repeat_interleave(groups, dim: 2).transpose(1, 2);
        var vh = v.to(ScalarType.Float64).repeat_interleave(groups, dim: 2).transpose(1, 2);
        var scores = qh.matmul(kh.transpose(-1, -2)) * scale;
        if (causal)
        {
            var mask = ones(sq, sk, dtype: ScalarType.Bool).tril(sk - sq);
            scores = scores.masked_fill(mask.logical_not(), double.NegativeInfinity);
        }
        var lse = scores.logsumexp(-1);
        var p = (scores - lse.unsqueeze(-1)).exp();
        return (p.matmul(vh).transpose(1, 2), lse);
    }

    [Theory]
    [InlineData(1, 7, 7, 4, 4, true)]
    [InlineData(2, 5, 13, 8, 2, true)]
    [InlineData(1, 6, 11, 8, 1, false)]
    [InlineData(1, 1, 9, 4, 2, true)]
    public void MatchesExplicitAttention(int b, int sq, int sk, int hq, int hkv, bool causal)
    {
        manual_seed(7);
        var q = randn(b, sq, hq, 16);
        var k = randn(b, sk, hkv, 16);
        var v = randn(b, sk, hkv, 16);
        var (o, lse) = FusedAttention.Attend(q, k, v, causal, 0.25);
        var (ro, rlse) = Reference(q, k, v, causal, 0.25);
        Assert.True(o.to(ScalarType.Float64).allclose(ro, rtol: 1e-5, atol: 1e-5));
        Assert.True(lse.to(ScalarType.Float64).allclose(rlse, rtol: 1e-5, atol: 1e-5));
    }

    [Fact]
    public void MergeOfDisjointKeySetsEqualsAttentionOverTheUnion()
    {
        manual_seed(3);
        var q = randn(1, 4, 4, 8);
        var k = randn(1, 10, 2, 8);
        var v = randn(1, 10, 2, 8);
        var a = FusedAttention.Attend(q, k.narrow(1, 0, 3), v.narrow(1, 0, 3), false, 0.3);
        var b = FusedAttention.Attend(q, k.narrow(1, 3, 7), v.narrow(1, 3, 7), false, 0.3);
        var empty = FusedAttention.Attend(q, k.narrow(1, 0, 0), v.narrow(1, 0, 0), false, 0.3);
        var (mo, mlse) = LseMerge.MergeAll([a, empty, b]);
        var (ro, rlse) = Reference(q, k, v, false, 0.3);
        Assert.True(mo.to(ScalarType.Float64).allclose(ro, rtol: 1e-5, atol: 1e-5));
        Assert.True(mlse.to(ScalarType.Float64).allclose(rlse, rtol: 1e-5, atol: 1e-5));
    }
}
