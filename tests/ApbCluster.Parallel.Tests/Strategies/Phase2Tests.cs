using ApbCluster.Model.Forward;
using ApbCluster.Model.Attention;
using ApbCluster.NativeInterop;
using ApbCluster.Parallel.Compression;
using ApbCluster.Parallel.Plan;
using ApbCluster.Parallel.Strategies;
using ApbCluster.Parallel.Tests.Apb;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;
using static ApbCluster.Parallel.Tests.Strategies.StrategyFixture;

namespace ApbCluster.Parallel.Tests.Strategies;

public class Phase2Tests
{
    public Phase2Tests() => TorchRuntime.EnsureLoaded("cpu");

    /// <summary>Context hosts attend without a mask, the last host causally over the new tokens: merged = dense over the union.</summary>
    [Theory]
    [InlineData(1, 4, 4)]
    [InlineData(3, 8, 2)]
    [InlineData(5, 8, 1)]
    [InlineData(8, 4, 4)]
    public void MergeOverAnySplitOfTheKvEqualsDenseAttentionOverTheUnion(int seed, int hq, int hkv)
    {
        var rng = new Random(seed);
        manual_seed(seed);
        int context = rng.Next(5, 40), fresh = rng.Next(1, 6), d = 8;
        var q = randn(1, fresh, hq, d);
        var k = randn(1, context + fresh, hkv, d);
        var v = randn(1, context + fresh, hkv, d);
        // Random cut points (empty parts allowed) over the context; the new tokens' KV is the last part.
        var cuts = Enumerable.Range(0, rng.Next(0, 6)).Select(_ => rng.Next(0, context + 1)).Append(0).Append(context).Distinct().Order().ToArray();
        var parts = new List<(Tensor, Tensor)>();
        for (int i = 0; i + 1 < cuts.Length; i++)
            parts.Add(FusedAttention.Attend(q, k.narrow(1, cuts[i], cuts[i + 1] - cuts[i]), v.narrow(1, cuts[i], cuts[i + 1] - cuts[i]), false, 0.3));
        parts.Add(FusedAttention.Attend(q, k.narrow(1, context, fresh), v.narrow(1, context, fresh), true, 0.3));
        var (o, lse) = LseMerge.MergeAll(parts);
        var mask = ones(fresh, context + fresh, dtype: ScalarType.Bool).tril(context);
        var (ro, rlse) = ApbAttentionTests.MaskedReference(q, k, v, mask, 0.3);
        Assert.True(o.to(ScalarType.Float64).allclose(ro, rtol: Tol, atol: Tol));
        Assert.True(lse.to(ScalarType.Float64).allclose(rlse, rtol: Tol, atol: Tol));
    }

    [Theory]
    [InlineData("retaining")]
    [InlineData("query")]
    [InlineData("random")]
    public void LossyApbRunsWithEveryCompressorAndRecordsPhases(string kind)
    {
        using var model = TinyModel(2, 3);
        var rng = new Random(3);
        var doc = Tokens(rng, 61, 61);
        var question = Tokens(rng, 3, 61);
        var plan = ApbPlan.Create(new PlanRequest { DocumentLength = 61, QuestionLength = 3, Hosts = 3, TemplateOffset = 2 });
        Assert.True(plan.AnchorLength > 0 && plan.PassingLength > 0);
        ICompressor compressor = kind switch
        {
            "retaining" => RetainingHeadCompressor.CreateRandom(2, 64, 16, 2, seed: 1),
            "query" => new QueryAwareCompressor(),
            _ => new RandomCompressor(1),
        };
        var runs = ParallelRun.InProcess(model, plan, new ApbStrategy(compressor), new PrefillRequest(doc, question) { KeepHidden = true },
            new Phase2.Phase2Options { MaxNewTokens = 5, Timing = true });
        Assert.Equal(61, runs.Sum(r => r.Shard.Length));
        Assert.All(runs, r => Assert.Equal(runs[^1].Result.Tokens, r.Result.Tokens));
        Assert.All(runs, r => Assert.False(r.Shard.Hidden!.isnan().any().item<bool>()));
        var phases = runs[1].Shard.Timings.Totals.Keys;
        foreach (var p in new[] { PhaseTimer.Qkv, PhaseTimer.Compressor, PhaseTimer.Passing, PhaseTimer.Attention, PhaseTimer.Mlp })
            Assert.Contains(p, phases);
        Assert.Equal(5, runs[^1].Result.Tokens.Length);
        Assert.Equal(4, runs[^1].Result.StepTimes.Count);
        // Host 0 has no anchor to attend to: its block is exactly dense.
        var dense = DenseHidden(model, doc).narrow(1, 0, runs[0].Shard.Length);
        Assert.True(runs[0].Shard.Hidden!.allclose(dense, rtol: Tol, atol: Tol));
    }

    [Fact]
    public void QueryAwareApbWithAnAnchorTooShortForTheQuestionStillAnswers()
    {
        // l_a = 2 ends before the template offset (16): no question row to score with, so selection
        // falls back to a seeded random choice instead of failing the query.
        using var model = TinyModel(2, 3);
        var rng = new Random(4);
        var doc = Tokens(rng, 48, 61);
        var question = Tokens(rng, 3, 61);
        var plan = ApbPlan.Create(new PlanRequest { DocumentLength = 48, QuestionLength = 3, Hosts = 2, AnchorLength = 2, PassingLength = 4 });
        var runs = ParallelRun.InProcess(model, plan, new ApbStrategy(new QueryAwareCompressor()), new PrefillRequest(doc, question),
            new Phase2.Phase2Options { MaxNewTokens = 3 });
        Assert.Equal(3, runs[^1].Result.Tokens.Length);
        foreach (var (shard, _) in runs) shard.Dispose();
    }

    [Fact]
    public void BalancedApbPlanRunsEndToEnd()
    {
        using var model = TinyModel(4, 5);
        var rng = new Random(5);
        var doc = Tokens(rng, 90, 61);
        var plan = ApbPlan.Create(new PlanRequest
        { DocumentLength = 90, QuestionLength = 2, Hosts = 3, AnchorLength = 8, PassingLength = 4, Split = BlockSplit.Balanced, Cost = new CostModel(1, 20) });
        Assert.NotEqual(plan.Blocks[0].Length, plan.Blocks[2].Length);
        var runs = Run(model, plan, new ApbStrategy(new RandomCompressor(2)), doc, Tokens(rng, 2, 61), 3);
        Assert.Equal(Enumerable.Range(0, 90).Select(x => (long)x), runs.SelectMany(r => r.Shard.Positions));
    }

    [Fact]
    public void TimingIsOffByDefault()
    {
        using var model = TinyModel(8, 1);
        var doc = Tokens(new Random(1), 10, 61);
        var plan = ApbPlan.Create(new PlanRequest { DocumentLength = 10, QuestionLength = 1, Hosts = 1, Mode = ParallelMode.Dense });
        var runs = Run(model, plan, new DenseStrategy(), doc, [5], 2);
        Assert.Empty(runs[0].Shard.Timings.Totals);
    }
}
