using ApbCluster.Model.KvStores;
using ApbCluster.Model.Layers;
using Xunit;
using static TorchSharp.torch;
using static ApbCluster.Parallel.Tests.Strategies.StrategyFixture;

namespace ApbCluster.Parallel.Tests.ShadowKv;

/// <summary>Each piece of the conversion and of a step's selection against plain loops over its definition (float64).</summary>
public class ShadowKvReferenceTests
{
    private const int H = 2, D = 8, Chunk = 4;

    private static double[,,] ToArray3(Tensor t)
    {
        var x = t.to(ScalarType.Float64).contiguous();
        var flat = x.data<double>().ToArray();
        long a = x.shape[0], b = x.shape[1], c = x.shape[2];
        var r = new double[a, b, c];
        for (int i = 0; i < a; i++) for (int j = 0; j < b; j++) for (int k = 0; k < c; k++) r[i, j, k] = flat[(i * b + j) * c + k];
        return r;
    }

    /// <summary>fp32 results against float64 loops.</summary>
    private static void Near(double expected, double actual, double tol = 1e-4) =>
        Assert.True(Math.Abs(expected - actual) <= tol * Math.Max(1, Math.Abs(expected)), $"expected {expected}, got {actual}");

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void InverseRopeRotatesEachPairBackByItsAngle(int seed)
    {
        using var model = TinyModel(H, seed);
        manual_seed(seed);
        var positions = new long[] { 3, 4, 9, 17, 40, 41 };
        var k = randn(1, positions.Length, H, D);
        var pre = ToArray3(ShadowKvMath.InverseRope(k, tensor(positions), model.Rope)[0]);
        var post = ToArray3(k[0]);
        var invFreq = model.Rope.InvFreq.to(ScalarType.Float64).data<double>().ToArray();
        for (int s = 0; s < positions.Length; s++)
        for (int h = 0; h < H; h++)
        for (int j = 0; j < D / 2; j++)
        {
            double theta = positions[s] * invFreq[j], c = Math.Cos(-theta), sn = Math.Sin(-theta);
            double a = post[s, h, j], b = post[s, h, j + D / 2];
            Near(a * c - b * sn, pre[s, h, j]);
            Near(a * sn + b * c, pre[s, h, j + D / 2]);
        }
    }

    [Theory]
    [InlineData(16)] // full rank: the keys come back
    [InlineData(5)]
    [InlineData(1)]
    public void FactorisationIsTheBestRankRApproximationOfAllHeadsSideBySide(int rank)
    {
        manual_seed(rank);
        var keys = randn(24, H, D);
        var (u, sv) = ShadowKvMath.Factorise(keys, rank);
        Assert.Equal(new long[] { 24, rank }, u.shape);
        Assert.Equal(new long[] { H, rank, D }, sv.shape);
        // Head h's keys are U x SV[h]; all heads side by side are the truncated SVD of [S, H*D].
        var rebuilt = ToArray3(stack(Enumerable.Range(0, H).Select(h => u.matmul(sv[h])).ToArray(), 1));
        var (ru, rs, rvh) = linalg.svd(keys.to(ScalarType.Float64).reshape(24, H * D), fullMatrices: false);
        var uu = ToArray3(ru.unsqueeze(0))!;
        var ss = rs.data<double>().ToArray();
        var vv = ToArray3(rvh.unsqueeze(0));
        for (int s = 0; s < 24; s++)
        for (int h = 0; h < H; h++)
        for (int d = 0; d < D; d++)
        {
            double sum = 0;
            for (int r = 0; r < rank; r++) sum += uu[0, s, r] * ss[r] * vv[0, r, h * D + d];
            Near(sum, rebuilt[s, h, d]);
        }
        Assert.Equal(Enumerable.Repeat(1.0, rank), Enumerable.Range(0, rank).Select(r => u[.., r].dot(u[.., r]).item<float>()).Select(x => Math.Round(x, 4)));
    }

    [Theory]
    [InlineData(3, 0)]
    [InlineData(4, 2)]
    [InlineData(5, 5)]
    public void LandmarksAreChunkMeansAndOutliersTheChunksLeastLikeTheirLandmark(int seed, int outliers)
    {
        manual_seed(seed);
        int n = 7;
        var keys = randn(n * Chunk, H, D);
        var landmarks = ShadowKvMath.Landmarks(keys, Chunk);
        var k = ToArray3(keys);
        var l = ToArray3(landmarks);
        var minCos = new double[H, n];
        for (int h = 0; h < H; h++)
        for (int c = 0; c < n; c++)
        {
            var mean = new double[D];
            for (int t = 0; t < Chunk; t++) for (int d = 0; d < D; d++) mean[d] += k[c * Chunk + t, h, d] / Chunk;
            for (int d = 0; d < D; d++) Near(mean[d], l[h, c, d]);
            minCos[h, c] = double.MaxValue;
            for (int t = 0; t < Chunk; t++)
            {
                double dot = 0, nk = 0, nl = 0;
                for (int d = 0; d < D; d++) { dot += k[c * Chunk + t, h, d] * mean[d]; nk += k[c * Chunk + t, h, d] * k[c * Chunk + t, h, d]; nl += mean[d] * mean[d]; }
                minCos[h, c] = Math.Min(minCos[h, c], dot / Math.Sqrt(nk * nl));
            }
        }
        var (chosen, kept) = ShadowKvMath.SplitOutliers(ShadowKvMath.MinCosine(keys, landmarks, Chunk), outliers);
        for (int h = 0; h < H; h++)
        {
            var expected = Enumerable.Range(0, n).OrderBy(c => minCos[h, c]).Take(outliers).Order().Select(x => (long)x).ToArray();
            Assert.Equal(expected, chosen[h].data<long>().ToArray());
            Assert.Equal(Enumerable.Range(0, n).Select(x => (long)x).Except(expected), kept[h].data<long>().ToArray());
        }
    }

    [Theory]
    [InlineData(1, 1, 3)]
    [InlineData(2, 3, 2)]
    [InlineData(3, 2, 6)]
    public void SelectionTakesTheTopChunksOfSummedSoftmaxMaxedOverTheGroup(int seed, int queries, int count)
    {
        manual_seed(seed);
        int hq = 8, m = 6, g = hq / H;
        var q = randn(1, queries, hq, D);
        var landmarks = randn(H, m, D);
        var ids = tensor(new long[] { 0, 2, 3, 5, 8, 9, 1, 2, 4, 6, 7, 9 }).view(H, m); // landmark -> chunk id, per head
        double scale = 1 / Math.Sqrt(D);
        var chosen = ShadowKvMath.Select(q, landmarks, ids, count, scale);
        var qa = ToArray3(q[0]);
        var la = ToArray3(landmarks);
        var idArr = ids.data<long>().ToArray();
        for (int h = 0; h < H; h++)
        {
            var perHead = Enumerable.Repeat(double.MinValue, m).ToArray();
            for (int j = 0; j < g; j++)
            {
                var summed = new double[m];
                for (int s = 0; s < queries; s++)
                {
                    var score = new double[m];
                    for (int c = 0; c < m; c++) for (int d = 0; d < D; d++) score[c] += qa[s, h * g + j, d] * la[h, c, d] * scale;
                    double max = score.Max(), z = score.Sum(x => Math.Exp(x - max));
                    for (int c = 0; c < m; c++) summed[c] += Math.Exp(score[c] - max) / z;
                }
                for (int c = 0; c < m; c++) perHead[c] = Math.Max(perHead[c], summed[c]);
            }
            var expected = Enumerable.Range(0, m).OrderByDescending(c => perHead[c]).Take(count).Select(c => idArr[h * m + c]).Order().ToArray();
            Assert.Equal(expected, chosen[h].data<long>().ToArray());
        }
    }
}
