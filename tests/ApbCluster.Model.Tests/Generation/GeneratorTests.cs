// Generate is synchronous and short here; passing the test token to every call adds noise.
#pragma warning disable xUnit1051
using ApbCluster.Model.Generation;
using ApbCluster.Model.Layers;
using ApbCluster.Model.Tests.Layers;
using ApbCluster.NativeInterop;
using Xunit;
using static TorchSharp.torch;
using Generator = ApbCluster.Model.Generation.Generator;

namespace ApbCluster.Model.Tests.Generation;

public class GeneratorTests : IDisposable
{
    private readonly LlamaModel _model;
    private readonly int[] _prompt = [5, 17, 3, 42, 8, 11];

    public GeneratorTests()
    {
        TorchRuntime.EnsureLoaded("cpu");
        var c = TinyModels.Llama;
        _model = TinyModels.Build(c, TinyModels.RandomWeights(c, seed: 21));
    }

    public void Dispose() => _model.Dispose();

    /// <summary>A toy detokenizer: token i is two letters, so stop strings can straddle tokens.</summary>
    private static string Decode(IReadOnlyList<int> ids) =>
        string.Concat(ids.Select(i => $"{(char)('a' + i % 26)}{(char)('a' + i / 26)}"));

    private static readonly GenerationOptions Greedy = new() { MaxNewTokens = 12, EosTokenIds = [] };

    private Generator NewGenerator() => new(_model, Decode);

    [Fact]
    public void GreedyEqualsArgmaxOfRepeatedFullForwards()
    {
        using var gen = NewGenerator();
        var result = gen.Generate(_prompt, Greedy);
        var ids = _prompt.Select(i => (long)i).ToList();
        var expected = new List<int>();
        for (int step = 0; step < Greedy.MaxNewTokens; step++)
        {
            var logits = _model.Forward(tensor(ids.ToArray()).unsqueeze(0));
            int next = (int)logits[0, -1].argmax().item<long>();
            expected.Add(next);
            ids.Add(next);
        }
        Assert.Equal(expected, result.TokenIds);
        Assert.Equal(FinishReason.Length, result.FinishReason);
        Assert.Equal(_prompt, result.PromptTokenIds);
        Assert.Equal(Decode(expected), result.Text);
        Assert.True(result.PrefillMs > 0 && result.DecodeMs > 0 && result.TokensPerSecond > 0);
    }

    [Fact]
    public void SameSeedSameSampleDifferentSeedDifferentSample()
    {
        using var gen = NewGenerator();
        var sampling = new GenerationOptions { MaxNewTokens = 24, EosTokenIds = [], Temperature = 1.0, TopP = 0.95, Seed = 42 };
        var a = gen.Generate(_prompt, sampling);
        var b = gen.Generate(_prompt, sampling);
        var c = gen.Generate(_prompt, sampling with { Seed = 43 });
        Assert.Equal(a.TokenIds, b.TokenIds);
        Assert.NotEqual(a.TokenIds, c.TokenIds);
        Assert.NotEqual(gen.Generate(_prompt, Greedy with { MaxNewTokens = 24 }).TokenIds, a.TokenIds);
    }

    [Fact]
    public void TinyTopPEqualsGreedy()
    {
        using var gen = NewGenerator();
        var greedy = gen.Generate(_prompt, Greedy);
        var nucleus = gen.Generate(_prompt, Greedy with { Temperature = 1.0, TopP = 1e-9, Seed = 7 });
        Assert.Equal(greedy.TokenIds, nucleus.TokenIds);
    }

    [Fact]
    public void StopsOnEos()
    {
        using var gen = NewGenerator();
        var free = gen.Generate(_prompt, Greedy).TokenIds;
        int k = Enumerable.Range(1, free.Count - 1).First(i => !free.Take(i).Contains(free[i]));
        var result = gen.Generate(_prompt, Greedy with { EosTokenIds = [free[k]] });
        Assert.Equal(FinishReason.Eos, result.FinishReason);
        Assert.Equal(free.Take(k + 1), result.TokenIds); // the EOS id is kept, as HF does
        Assert.Equal(Decode(free.Take(k).ToArray()), result.Text);
    }

    [Fact]
    public void EosFromConfigIsTheDefault()
    {
        using var gen = NewGenerator();
        var free = gen.Generate(_prompt, Greedy).TokenIds;
        using var model = TinyModels.Build(_model.Config with { EosTokenIds = [free[0]] }, TinyModels.RandomWeights(_model.Config, seed: 21));
        using var gen2 = new Generator(model, Decode);
        var result = gen2.Generate(_prompt, new GenerationOptions { MaxNewTokens = 12 });
        Assert.Equal(FinishReason.Eos, result.FinishReason);
        Assert.Equal([free[0]], result.TokenIds);
    }

    [Fact]
    public void StopsOnAStopStringAndCutsTheText()
    {
        using var gen = NewGenerator();
        var free = gen.Generate(_prompt, Greedy);
        // A stop string straddling tokens 4 and 5 (the second letter of one, the first of the next).
        string stop = free.Text.Substring(9, 2);
        int at = free.Text.IndexOf(stop, StringComparison.Ordinal);
        var result = gen.Generate(_prompt, Greedy with { StopStrings = ["never-appears", stop] });
        Assert.Equal(FinishReason.Stop, result.FinishReason);
        Assert.Equal(free.Text[..at], result.Text);
        int tokensNeeded = (at + stop.Length + 1) / 2;
        Assert.Equal(free.TokenIds.Take(tokensNeeded), result.TokenIds);
    }

    [Fact]
    public void MaxNewTokensIsHonoured()
    {
        using var gen = NewGenerator();
        var result = gen.Generate(_prompt, Greedy with { MaxNewTokens = 3 });
        Assert.Equal(3, result.TokenIds.Count);
        Assert.Equal(FinishReason.Length, result.FinishReason);
        Assert.Empty(gen.Generate(_prompt, Greedy with { MaxNewTokens = 0 }).TokenIds);
    }

    [Fact]
    public void CacheIsReusedAndGrownAcrossRequests()
    {
        using var gen = NewGenerator();
        var small = gen.Generate(_prompt, Greedy with { MaxNewTokens = 2 });
        var large = gen.Generate(_prompt, Greedy with { MaxNewTokens = 12 });
        var again = gen.Generate(_prompt, Greedy with { MaxNewTokens = 2 });
        Assert.Equal(small.TokenIds, large.TokenIds.Take(2));
        Assert.Equal(small.TokenIds, again.TokenIds);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task StreamingYieldsTheResultsTokensAndText(bool withStop)
    {
        using var gen = NewGenerator();
        var free = gen.Generate(_prompt, Greedy);
        var options = withStop ? Greedy with { StopStrings = [free.Text.Substring(13, 3)] } : Greedy;
        var result = gen.Generate(_prompt, options);
        var streamed = new List<GeneratedToken>();
        await foreach (var t in gen.StreamAsync(_prompt, options, TestContext.Current.CancellationToken)) streamed.Add(t);
        Assert.Equal(result.TokenIds, streamed.Select(t => t.TokenId));
        Assert.Equal(result.Text, string.Concat(streamed.Select(t => t.Text)));
        Assert.Equal(Enumerable.Range(0, streamed.Count), streamed.Select(t => t.Index));
        Assert.All(streamed.SkipLast(1), t => Assert.Null(t.FinishReason));
        Assert.Equal(result.FinishReason, streamed[^1].FinishReason);
        // The callback sees the same tokens as the stream.
        var called = new List<GeneratedToken>();
        gen.Generate(_prompt, options, called.Add);
        Assert.Equal(streamed, called);
    }

    [Fact]
    public async Task LeavingTheStreamEarlyStopsGeneration()
    {
        using var gen = NewGenerator();
        int seen = 0;
        await foreach (var _ in gen.StreamAsync(_prompt, Greedy with { MaxNewTokens = 200 }, TestContext.Current.CancellationToken))
            if (++seen == 2) break;
        // The generator is free again: a new request works.
        Assert.Equal(3, gen.Generate(_prompt, Greedy with { MaxNewTokens = 3 }).TokenIds.Count);
    }

    [Fact]
    public void StopStringsWithoutDecoderAreRejected()
    {
        using var gen = new Generator(_model);
        Assert.Throws<ArgumentException>(() => gen.Generate(_prompt, Greedy with { StopStrings = ["x"] }));
    }
}
