using ApbCluster.Model.Config;
using ApbCluster.Model.Layers;
using ApbCluster.NativeInterop;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace ApbCluster.Model.Tests.Layers;

public class LlamaModelTests
{
    public LlamaModelTests() => TorchRuntime.EnsureLoaded("cpu");

    public static TheoryData<string> Models => ["llama", "qwen2"];

    private static ModelConfig ConfigOf(string name) => name == "llama" ? TinyModels.Llama : TinyModels.Qwen2;

    private static double RelErr(Tensor a, Tensor b) =>
        (a.to(ScalarType.Float64) - b.to(ScalarType.Float64)).abs().max().item<double>() / b.to(ScalarType.Float64).abs().max().item<double>();

    private static long[] Tokens(ModelConfig c, int n, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => (long)rng.Next(c.VocabSize)).ToArray();
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void LogitsMatchFloat64Reference(string name)
    {
        var c = ConfigOf(name);
        var w = TinyModels.RandomWeights(c, seed: 11);
        using var model = TinyModels.Build(c, w);
        var tokens = Tokens(c, 23, seed: 5);
        var logits = model.Forward(tensor(tokens).unsqueeze(0));
        var reference = ReferenceLlama.Logits(c, w, tokens);
        Assert.Equal(new long[] { 1, 23, c.VocabSize }, logits.shape);
        Assert.Equal(ScalarType.Float32, logits.dtype);
        double err = RelErr(logits[0], reference);
        Assert.True(err <= 1e-5, $"relative error {err:E3}");
    }

    [Fact]
    public void RopeScalingChangesTheLogits()
    {
        // Guards the reference test: without llama3 scaling the result must differ, so scaling is exercised.
        var c = TinyModels.Llama;
        var w = TinyModels.RandomWeights(c, seed: 11);
        using var scaled = TinyModels.Build(c, w);
        using var plain = TinyModels.Build(c with { RopeScaling = null }, w);
        var ids = tensor(Tokens(c, 40, seed: 2)).unsqueeze(0);
        Assert.True(RelErr(scaled.Forward(ids), plain.Forward(ids)) > 1e-3);
    }

    [Fact]
    public void InvFreqMatchesHfLlama3Values()
    {
        // HF _compute_llama3_parameters for Llama 3.1 8B (theta 500000, d 128, factor 8, 1, 4, 8192):
        // the first frequency is kept, the last is divided by 8.
        var c = TinyModels.Llama with { HeadDim = 128, RopeTheta = 500000, RopeScaling = new RopeScaling("llama3", 8, 1, 4, 8192) };
        var inv = RotaryEmbedding.ComputeInvFreq(c);
        Assert.Equal(1.0, inv[0].item<float>(), 6);
        double lastPlain = 1.0 / Math.Pow(500000, 126.0 / 128);
        Assert.Equal(lastPlain / 8, inv[63].item<float>(), 1e-9);
    }

    [Fact]
    public void ParameterNamesAreHfWeightNames()
    {
        foreach (var c in new[] { TinyModels.Llama, TinyModels.Qwen2 })
        {
            var w = TinyModels.RandomWeights(c, seed: 1);
            using var model = TinyModels.Build(c, w);
            var names = model.named_parameters().Select(p => p.name).OrderBy(n => n, StringComparer.Ordinal).ToArray();
            Assert.Equal(w.Keys.OrderBy(n => n, StringComparer.Ordinal).ToArray(), names);
        }
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void CachedDecodeEqualsFullRecompute(string name)
    {
        var c = ConfigOf(name);
        using var model = TinyModels.Build(c, TinyModels.RandomWeights(c, seed: 3));
        var tokens = Tokens(c, 16, seed: 9);
        var all = tensor(tokens).unsqueeze(0);
        var full = model.Forward(all);
        using var cache = model.CreateCache(1, 32);
        // Prefill 5, a chunk of 3, then one token at a time.
        var parts = new List<(int Start, int Len)> { (0, 5), (5, 3) };
        for (int t = 8; t < 16; t++) parts.Add((t, 1));
        foreach (var (start, len) in parts)
        {
            var step = model.Forward(all.narrow(1, start, len), cache);
            Assert.Equal(start + len, cache.Length);
            double err = RelErr(step, full.narrow(1, start, len));
            Assert.True(err <= 1e-5, $"positions {start}..{start + len}: relative error {err:E3}");
        }
    }

    [Fact]
    public void LastPositionOnlyIsTheLastRow()
    {
        var c = TinyModels.Qwen2;
        using var model = TinyModels.Build(c, TinyModels.RandomWeights(c, seed: 4));
        var ids = tensor(Tokens(c, 7, seed: 1)).unsqueeze(0);
        var full = model.Forward(ids);
        var last = model.Forward(ids, lastPositionOnly: true);
        Assert.Equal(new long[] { 1, 1, c.VocabSize }, last.shape);
        Assert.True(last.allclose(full.narrow(1, 6, 1), rtol: 1e-5, atol: 1e-5));
    }

    [Fact]
    public void BatchedForwardEqualsPerSequence()
    {
        var c = TinyModels.Llama;
        using var model = TinyModels.Build(c, TinyModels.RandomWeights(c, seed: 8));
        var a = tensor(Tokens(c, 9, seed: 1)).unsqueeze(0);
        var b = tensor(Tokens(c, 9, seed: 2)).unsqueeze(0);
        var both = model.Forward(cat([a, b], 0));
        Assert.True(both.narrow(0, 0, 1).allclose(model.Forward(a), rtol: 1e-5, atol: 1e-5));
        Assert.True(both.narrow(0, 1, 1).allclose(model.Forward(b), rtol: 1e-5, atol: 1e-5));
    }

    [Fact]
    public void LayerApiComposesToForward()
    {
        // The strategies' contract: Embed, Project, attend, Finish, Logits reproduce Forward.
        var c = TinyModels.Llama;
        using var model = TinyModels.Build(c, TinyModels.RandomWeights(c, seed: 6));
        var ids = tensor(Tokens(c, 10, seed: 3)).unsqueeze(0);
        var expected = model.Forward(ids);
        using var _ = no_grad();
        var positions = arange(10L);
        var h = model.Embed(ids);
        foreach (var layer in model.Layers)
        {
            var p = layer.Project(h, positions);
            Assert.Same(p.VPre, p.V);
            Assert.True(p.K.allclose(model.Rope.Apply(p.KPre, positions), rtol: 1e-6, atol: 1e-6));
            var (o, _) = Model.Attention.FusedAttention.Attend(p.Q, p.K, p.V, causal: true, model.Scale);
            h = layer.Finish(h, o);
        }
        Assert.True(model.Logits(h).allclose(expected, rtol: 1e-6, atol: 1e-6));
    }

    [Fact]
    public void RandomModelRunsInBf16()
    {
        var c = TinyModels.Llama;
        using var model = LlamaModel.CreateRandom(c, CPU, ScalarType.BFloat16, seed: 1);
        var logits = model.Forward(tensor(Tokens(c, 6, seed: 1)).unsqueeze(0));
        Assert.Equal(ScalarType.Float32, logits.dtype);
        Assert.True(logits.isfinite().all().item<bool>());
    }

    [Fact]
    public void RopeTableGrowsBeyondMaxPositions()
    {
        var c = TinyModels.Llama;
        var w = TinyModels.RandomWeights(c, seed: 12);
        using var small = TinyModels.Build(c with { MaxPositionEmbeddings = 8 }, w);
        using var large = TinyModels.Build(c, w);
        var ids = tensor(Tokens(c, 30, seed: 4)).unsqueeze(0);
        Assert.True(small.Forward(ids).allclose(large.Forward(ids), rtol: 1e-6, atol: 1e-6));
        Assert.True(small.Rope.Capacity >= 30);
    }
}
