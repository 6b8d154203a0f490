using ApbCluster.NativeInterop;
using ApbCluster.Parallel.Compression;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace ApbCluster.Parallel.Tests.Apb;

public class CompressorTests
{
    public CompressorTests() => TorchRuntime.EnsureLoaded("cpu");

    [Fact]
    public void MaxPoolHasWindowFiveAndKeepsTheLength()
    {
        var s = zeros(1, 12, 1);
        s[0, 6, 0] = tensor(1f);
        var pooled = TokenSelector.MaxPool(s);
        Assert.Equal(new long[] { 1, 12, 1 }, pooled.shape);
        var row = pooled.flatten().data<float>().ToArray();
        Assert.Equal(new float[] { 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0 }, row);
    }

    [Fact]
    public void SelectsTopPerKvHeadAndNeverTheFirstAnchorPositions()
    {
        // Block at global positions 10..29, l_a = 14: positions 10..13 are forbidden.
        int s = 20, hkv = 3, d = 4, lp = 3, la = 14;
        var scores = full(1, s, hkv, -10f);
        scores[0, 0, 0] = tensor(100f);   // forbidden (position 10): must not be picked
        scores[0, 10, 0] = tensor(50f);   // pool spreads it over 8..12 (positions 18..22)
        scores[0, 19, 1] = tensor(9f);    // head 1: pooled over 17..19
        scores[0, 6, 2] = tensor(7f);     // head 2: pooled over 4..8
        var positions = arange(10, 30, dtype: ScalarType.Int64);
        var k = arange(s * hkv * d, dtype: ScalarType.Float32).reshape(1, s, hkv, d);
        var v = -k;
        var block = TokenSelector.Select(scores, positions, la, lp, k, v);
        Assert.Equal(new long[] { 1, lp, hkv, d }, block.K.shape);
        var idx = block.Indices[0];
        Assert.All(Sorted(idx[.., 0]), i => Assert.InRange(i, 8, 12)); // ties inside the pooled window
        Assert.Equal(new long[] { 17, 18, 19 }, Sorted(idx[.., 1]));
        Assert.All(Sorted(idx[.., 2]), i => Assert.InRange(i, 4, 8));
        for (int j = 0; j < lp; j++)
            for (int g = 0; g < hkv; g++)
            {
                long t = idx[j, g].item<long>();
                Assert.True(k[0, t, g].allclose(block.K[0, j, g], 0, 0));
                Assert.True(v[0, t, g].allclose(block.V[0, j, g], 0, 0));
            }
    }

    [Fact]
    public void ForbiddenPositionsApplyOnHostZeroToo()
    {
        var scores = arange(16, 0, -1, dtype: ScalarType.Float32).reshape(1, 16, 1); // best scores first
        var k = randn(1, 16, 1, 2);
        var block = TokenSelector.Select(scores, arange(16, dtype: ScalarType.Int64), anchorLength: 5, count: 4, k, k);
        Assert.All(Sorted(block.Indices[0, .., 0]), i => Assert.True(i >= 5));
    }

    [Fact]
    public void QueryAwareScoreIsTheMeanGroupDotProduct()
    {
        manual_seed(1);
        int lq = 3, s = 7, hq = 4, hkv = 2, d = 5;
        var q = randn(1, lq, hq, d);
        var k = randn(1, s, hkv, d);
        var scores = new QueryAwareCompressor().Score(new CompressorInput(0, 1, q, k, k, k, q));
        for (int t = 0; t < s; t++)
            for (int g = 0; g < hkv; g++)
            {
                double sum = 0;
                for (int i = 0; i < lq; i++)
                    for (int j = 0; j < hq / hkv; j++)
                        sum += q[0, i, g * 2 + j].dot(k[0, t, g]).item<float>();
                Assert.Equal(sum / (lq * 2), scores[0, t, g].item<float>(), 4);
            }
    }

    [Fact]
    public void RetainingHeadsLoadFromThePublishedKeysAndScore()
    {
        int layers = 2, hq = 4, hkv = 2, d = 8, s = 6;
        var random = RetainingHeadCompressor.CreateRandom(layers, hq * d, hkv * d, hkv, seed: 3);
        var state = random.StateDict();
        Assert.Contains("model.layers.1.self_attn.fc1.weight", state.Keys);
        Assert.Equal(new long[] { 1024, (hq + 2 * hkv) * d }, state["model.layers.0.self_attn.fc1.weight"].shape);
        Assert.Equal(new long[] { hkv, 1024 }, state["model.layers.0.self_attn.fc2.weight"].shape);
        var loaded = RetainingHeadCompressor.Load(state, layers, hq * d, hkv * d, hkv);

        manual_seed(2);
        var qp = randn(1, s, hq, d);
        var kp = randn(1, s, hkv, d);
        var vp = randn(1, s, hkv, d);
        var scores = loaded.Score(new CompressorInput(1, 0, qp, kp, vp, kp));
        Assert.Equal(new long[] { 1, s, hkv }, scores.shape);
        Assert.Equal(ScalarType.Float32, scores.dtype);
        // fc2(silu(fc1(concat(q, k, v)))) by hand
        var x = cat([qp.reshape(1, s, -1), kp.reshape(1, s, -1), vp.reshape(1, s, -1)], -1);
        var h = x.matmul(state["model.layers.1.self_attn.fc1.weight"].t());
        var expected = (h * h.sigmoid()).matmul(state["model.layers.1.self_attn.fc2.weight"].t());
        Assert.True(scores.allclose(expected, rtol: 1e-5, atol: 1e-5));

        state.Remove("model.layers.1.self_attn.fc2.weight");
        var e = Assert.Throws<KeyNotFoundException>(() => RetainingHeadCompressor.Load(state, layers, hq * d, hkv * d, hkv));
        Assert.Contains("model.layers.1.self_attn.fc2.weight", e.Message);
    }

    [Fact]
    public void TrainedHeadsAreFoundBesideTheModelsWeights()
    {
        var dir = Directory.CreateTempSubdirectory("apb-heads-").FullName;
        try
        {
            Assert.Null(RetainingHeadsFile.Beside(dir));
            var path = Path.Combine(dir, RetainingHeadsFile.DefaultFileName);
            RetainingHeadsFile.Save(path, RetainingHeadCompressor.CreateRandom(2, 16, 8, 2, seed: 1));
            Assert.Equal(path, RetainingHeadsFile.Beside(dir));
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void RandomCompressorIsSeeded()
    {
        var k = zeros(1, 9, 2, 4);
        var input = new CompressorInput(3, 1, k, k, k, k);
        Assert.True(new RandomCompressor(5).Score(input).allclose(new RandomCompressor(5).Score(input), 0, 0));
        Assert.False(new RandomCompressor(5).Score(input).allclose(new RandomCompressor(6).Score(input), 0, 0));
    }

    private static long[] Sorted(Tensor t) => t.data<long>().ToArray().Order().ToArray();
}
