using ApbCluster.Model;
using ApbCluster.Model.Attention;
using ApbCluster.Model.KvStores;
using ApbCluster.Model.Layers;
using ApbCluster.Parallel.Compression;
using ApbCluster.Parallel.Phase2;
using ApbCluster.Parallel.Plan;
using ApbCluster.Parallel.Strategies;
using Xunit;
using static TorchSharp.torch;
using static ApbCluster.Parallel.Tests.Strategies.StrategyFixture;

namespace ApbCluster.Parallel.Tests.ShadowKv;

/// <summary>The spec's correctness handle: rank n_kv x D and a budget covering every chunk decode exactly as dense.</summary>
public class ShadowKvExactnessTests
{
    /// <summary>Small chunks and few exact ones, so the tiny prompts still have landmarks to select from.</summary>
    private static ShadowKvOptions Lossless(int kvHeads) =>
        new() { Rank = kvHeads * 8, Chunk = 4, Budget = 4096, Outliers = 2, Local = 1 };

    /// <summary>What a host's store held when built (Phase 2 disposes it at the end).</summary>
    private sealed record Built(ShadowKvLayout Layout, long DeviceBytes, long HostBytes);

    private static Func<HostShard, LlamaModel, IKvStore> Factory(ShadowKvOptions o, List<Built> built) => (shard, model) =>
    {
        var store = ShadowKvStore.Build(shard.Keys, shard.Values, shard.Positions, model, o, disposeInputs: true);
        lock (built) built.Add(new Built(store.Layout, store.DeviceBytes, store.HostBytes));
        return store;
    };

    [Theory]
    [InlineData(1, 2)]
    [InlineData(2, 4)]
    [InlineData(8, 3)]
    public void LogitsOfEveryStepMatchDenseFor32Steps(int kvHeads, long seed)
    {
        using var model = TinyModel(kvHeads, seed);
        var rng = new Random((int)seed);
        var doc = Tokens(rng, 83, 61);
        var question = Tokens(rng, 3, 61);
        var (expectedTokens, expectedLogits) = DenseLogits(model, doc, question, 32);
        using var _ = no_grad();
        using var prefill = model.CreateCache(1, doc.Length);
        model.Forward(tensor(doc, dtype: ScalarType.Int64).reshape(1, -1), prefill);
        var keys = Enumerable.Range(0, model.Layers.Count).Select(i => prefill.Keys(i).clone()).ToArray();
        var values = Enumerable.Range(0, model.Layers.Count).Select(i => prefill.Values(i).clone()).ToArray();
        using var store = ShadowKvStore.Build(keys, values, Enumerable.Range(0, doc.Length).Select(x => (long)x).ToArray(), model,
            Lossless(kvHeads), disposeInputs: true);
        Assert.True(store.Layout.SelectedChunks > 0 && store.Layout.OutlierChunks > 0, $"the sparse path must be exercised: {store.Layout}");
        Assert.True(keys.All(k => k.IsInvalid), "the inputs are freed as each layer is converted");

        using var own = model.CreateCache(1, question.Length + 32);
        long[] input = question;
        long position = doc.Length;
        for (int step = 0; step < 32; step++)
        {
            using var scope = NewDisposeScope();
            var logits = StepLogits(model, store, own, input, position);
            var diff = (logits - expectedLogits[step]).abs().max().item<float>();
            Assert.True(diff <= Tol, $"step {step}: max |logit diff| = {diff}");
            position += input.Length;
            input = [expectedTokens[step]];
        }
    }

    [Theory]
    [InlineData(1, 2, 1)]
    [InlineData(2, 4, 2)]
    [InlineData(4, 2, 3)]
    [InlineData(4, 8, 4)]
    public void GreedyTokensMatchDenseFor32StepsOnAnyHostCount(int hosts, int kvHeads, long seed)
    {
        using var model = TinyModel(kvHeads, seed);
        var rng = new Random((int)seed);
        int n = 40 * hosts + 3;
        var doc = Tokens(rng, n, 61);
        var question = Tokens(rng, 4, 61);
        var mode = hosts == 1 ? ParallelMode.Dense : ParallelMode.Apb;
        var plan = ApbPlan.Create(new PlanRequest
        {
            DocumentLength = n, QuestionLength = 4, Hosts = hosts, Mode = mode, NumHeads = 8, NumKvHeads = kvHeads,
            AnchorLength = mode == ParallelMode.Apb ? 0 : null, PassAll = mode == ParallelMode.Apb,
        });
        var built = new List<Built>();
        var runs = ParallelRun.InProcess(model, plan, ParallelRun.For(mode, new RandomCompressor(1)), new PrefillRequest(doc, question),
            new Phase2Options { MaxNewTokens = 32, KvStore = Factory(Lossless(kvHeads), built) }, TimeSpan.FromMinutes(2));
        Assert.Equal(hosts, built.Count);
        Assert.All(built, s => Assert.True(s.Layout.SelectedChunks > 0, $"the sparse path must be exercised: {s.Layout}"));
        var expected = DenseGreedy(model, doc, question, 32);
        foreach (var (shard, result) in runs)
        {
            Assert.Equal(expected, result.Tokens);
            shard.Dispose(); // after the store freed its K/V: TorchSharp frees each tensor once
        }
    }

    [Fact]
    public void LossyApbWithRetainingHeadsAndDefaultsRunsOnEveryHost()
    {
        using var model = TinyModel(2, 6);
        var rng = new Random(6);
        var doc = Tokens(rng, 300, 61);
        var plan = ApbPlan.Create(new PlanRequest { DocumentLength = 300, QuestionLength = 3, Hosts = 2, TemplateOffset = 2 });
        var o = new ShadowKvOptions { Rank = 4, Chunk = 8, Budget = 32, Outliers = 2, Local = 1, Values = ShadowKvValues.Host };
        var built = new List<Built>();
        var runs = ParallelRun.InProcess(model, plan, new ApbStrategy(RetainingHeadCompressor.CreateRandom(2, 64, 16, 2, seed: 1)),
            new PrefillRequest(doc, Tokens(rng, 3, 61)), new Phase2Options { MaxNewTokens = 6, KvStore = Factory(o, built) });
        Assert.All(runs, r => Assert.Equal(runs[^1].Result.Tokens, r.Result.Tokens));
        Assert.Equal(6, runs[^1].Result.Tokens.Length);
        Assert.All(built, s => Assert.True(s.HostBytes > 0 && s.Layout.SelectedChunks == 4, $"{s.Layout}, {s.HostBytes} host bytes"));
    }

    [Fact]
    public void ASmallBudgetAttendsASubsetAndDiffersFromFull()
    {
        // The test above can only fail if selection matters: with too small a budget the output must move.
        using var model = TinyModel(2, 9);
        using var _ = no_grad();
        manual_seed(9);
        var keys = Enumerable.Range(0, 2).Select(_ => randn(1, 64, 2, 8)).ToArray();
        var values = Enumerable.Range(0, 2).Select(_ => randn(1, 64, 2, 8)).ToArray();
        var positions = Enumerable.Range(0, 64).Select(x => (long)x).ToArray();
        var q = randn(1, 1, 8, 8);
        using var full = new FullKvStore(keys, values);
        using var sparse = ShadowKvStore.Build(keys, values, positions, model, new ShadowKvOptions { Rank = 16, Chunk = 4, Budget = 8, Outliers = 1, Local = 1 });
        using var all = ShadowKvStore.Build(keys, values, positions, model, new ShadowKvOptions { Rank = 16, Chunk = 4, Budget = 64, Outliers = 1, Local = 1 });
        var exact = full.Attend(0, q, model.Scale);
        Assert.True(all.Attend(0, q, model.Scale).Out.allclose(exact.Out, rtol: Tol, atol: Tol));
        Assert.False(sparse.Attend(0, q, model.Scale).Out.allclose(exact.Out, rtol: 1e-3, atol: 1e-3));
    }

    /// <summary>Phase 2's step on one host: the store's part merged with the new tokens' own causal part.</summary>
    private static Tensor StepLogits(LlamaModel model, IKvStore store, KvCache own, long[] ids, long position)
    {
        var positions = TorchConstants.Positions(position, position + ids.Length, model.Device);
        var h = model.Embed(tensor(ids, dtype: ScalarType.Int64).reshape(1, -1));
        var angles = model.Rope.Angles(positions, h.dtype);
        for (int i = 0; i < model.Layers.Count; i++)
        {
            var p = model.Layers[i].Project(h, angles);
            own.Append(i, p.K, p.V);
            var merged = LseMerge.Merge(store.Attend(i, p.Q, model.Scale), FusedAttention.Attend(p.Q, own.Keys(i), own.Values(i), causal: true, model.Scale));
            h = model.Layers[i].Finish(h, merged.Out.to(h.dtype));
        }
        return model.Logits(h.narrow(1, h.shape[1] - 1, 1))[0, 0].MoveToOuterDisposeScope();
    }

    /// <summary>Greedy tokens and each step's logits from the model's own cached forward.</summary>
    private static (long[] Tokens, Tensor[] Logits) DenseLogits(LlamaModel model, long[] doc, long[] question, int steps)
    {
        using var _ = no_grad();
        using var cache = model.CreateCache(1, doc.Length + question.Length + steps);
        var tokens = new List<long>();
        var all = new List<Tensor>();
        var logits = model.Forward(tensor(doc.Concat(question).ToArray(), dtype: ScalarType.Int64).reshape(1, -1), cache, lastPositionOnly: true);
        for (int i = 0; i < steps; i++)
        {
            all.Add(logits[0, -1].clone());
            long next = logits[0, -1].argmax().item<long>();
            tokens.Add(next);
            logits = model.Forward(tensor(new[] { next }, dtype: ScalarType.Int64).reshape(1, 1), cache, lastPositionOnly: true);
        }
        return (tokens.ToArray(), all.ToArray());
    }
}
