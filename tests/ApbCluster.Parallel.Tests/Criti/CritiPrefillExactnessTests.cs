using ApbCluster.Parallel.Compression;
using ApbCluster.Parallel.Kernels;
using ApbCluster.Parallel.Plan;
using ApbCluster.Parallel.Strategies;
using Xunit;
using static ApbCluster.Parallel.Tests.Strategies.StrategyFixture;

namespace ApbCluster.Parallel.Tests.Criti;

/// <summary>
/// Whole prefills with CritiPrefill (segment 8, block 2: the CPU lengths' scale of 512/32). A budget equal to the
/// longest pruned past runs that segment through the gather path choosing every block: it must equal dense, as must
/// a threshold beyond the prompt; a small budget must not.
/// </summary>
public class CritiPrefillExactnessTests
{
    private static readonly CritiPrefillOptions Small = new() { Segment = 8, Block = 2, Budget = 8, Threshold = 0 };

    /// <summary>The budget that covers the past of every segment the layout prunes for the longest local block.</summary>
    private static CritiPrefillOptions Covering(int longestLocal)
    {
        int segments = (longestLocal + Small.Segment - 1) / Small.Segment;
        var o = Small with { Budget = Small.Segment * (segments - 2) };
        Assert.True(CritiPrefillLayout.For(longestLocal, 0, o).PrunesAnything, "the test must run the gather path");
        return o;
    }

    [Theory]
    [InlineData(61, 8, false)]
    [InlineData(61, 2, false)]
    [InlineData(45, 1, true)]
    public void DenseWithACoveringBudgetOrThresholdEqualsDense(int n, int kv, bool thresholdBeyond)
    {
        var rng = new Random(n + kv);
        using var model = TinyModel(kv, n);
        var doc = Tokens(rng, n, 61);
        var question = Tokens(rng, 3, 61);
        var options = thresholdBeyond ? Small with { Threshold = n } : Covering(n);
        var plan = ApbPlan.Create(new PlanRequest { DocumentLength = n, QuestionLength = 3, Hosts = 1, Mode = ParallelMode.Dense });
        var runs = Run(model, plan, new DenseStrategy(), doc, question, 32, options);
        AssertShardsMatchDense(DenseHidden(model, doc), runs.Select(r => r.Shard), n);
        Assert.Equal(DenseGreedy(model, doc, question, 32), runs[^1].Result.Tokens);
    }

    [Theory]
    [InlineData(2, 2, 70)]
    [InlineData(3, 4, 80)]
    [InlineData(4, 1, 97)]
    public void ApbPassingEverythingWithACoveringBudgetEqualsDense(int hosts, int kv, int n)
    {
        var rng = new Random(hosts * 10 + kv);
        using var model = TinyModel(kv, hosts);
        var doc = Tokens(rng, n, 61);
        var question = Tokens(rng, 3, 61);
        var plan = ApbPlan.Create(new PlanRequest { DocumentLength = n, QuestionLength = 3, Hosts = hosts, AnchorLength = 0, PassAll = true });
        var options = Covering(plan.Blocks.Max(b => b.Length));
        var runs = Run(model, plan, new ApbStrategy(new RandomCompressor(1)), doc, question, 32, options);
        AssertShardsMatchDense(DenseHidden(model, doc), runs.Select(r => r.Shard), n);
        Assert.Equal(DenseGreedy(model, doc, question, 32), runs[^1].Result.Tokens);
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    public void ApbWithAnchorAndCompressionAndACoveringBudgetEqualsApb(int hosts)
    {
        // Query-aware compression: host 0 runs the anchor as a probe, every other host anchors and passes.
        var rng = new Random(hosts);
        using var model = TinyModel(2, 5);
        int n = 40 * hosts;
        var doc = Tokens(rng, n, 61);
        var question = Tokens(rng, 4, 61);
        var plan = ApbPlan.Create(new PlanRequest { DocumentLength = n, QuestionLength = 4, Hosts = hosts, AnchorLength = 10, PassingLength = 6, TemplateOffset = 1 });
        var options = Covering(plan.Blocks.Max(b => b.Length));
        var plain = Run(model, plan, new ApbStrategy(new QueryAwareCompressor()), doc, question, 8);
        var pruned = Run(model, plan, new ApbStrategy(new QueryAwareCompressor()), doc, question, 8, options);
        for (int h = 0; h < hosts; h++)
            Assert.True(plain[h].Shard.Hidden!.allclose(pruned[h].Shard.Hidden!, rtol: Tol, atol: Tol), $"host {h}");
        Assert.Equal(plain[^1].Result.Tokens, pruned[^1].Result.Tokens);
    }

    [Theory]
    [InlineData(ParallelMode.Dense, 1)]
    [InlineData(ParallelMode.Apb, 2)]
    public void ASmallBudgetPrunes(ParallelMode mode, int hosts)
    {
        var rng = new Random(9);
        using var model = TinyModel(2, 9);
        int n = 90;
        var doc = Tokens(rng, n, 61);
        var plan = ApbPlan.Create(new PlanRequest { DocumentLength = n, QuestionLength = 2, Hosts = hosts, Mode = mode, AnchorLength = mode == ParallelMode.Apb ? 0 : null, PassAll = mode == ParallelMode.Apb });
        var question = Tokens(rng, 2, 61);
        var strategy = ParallelRun.For(mode, new RandomCompressor(1));
        var full = Run(model, plan, strategy, doc, question, 1);
        var pruned = Run(model, plan, strategy, doc, question, 1, Small with { Budget = 2 });
        Assert.False(full[^1].Shard.Hidden!.allclose(pruned[^1].Shard.Hidden!, rtol: 1e-3, atol: 1e-3));
    }

    [Fact]
    public void DensePrefillIntoTheCacheEqualsTheModelsForward()
    {
        // `apb generate` and the dense bench prefill through DenseStrategy into the model's cache, then decode as usual.
        using var model = TinyModel(2, 4);
        int n = 61;
        var ids = TorchSharp.torch.tensor(Tokens(new Random(4), n, 61), dtype: TorchSharp.torch.ScalarType.Int64).reshape(1, -1);
        using var expectedCache = model.CreateCache(1, n);
        var expected = model.Forward(ids, expectedCache, lastPositionOnly: true);
        foreach (var options in new CritiPrefillOptions?[] { null, Covering(n) })
        {
            using var cache = model.CreateCache(1, n);
            var logits = DensePrefill.IntoCache(model, ids, cache, options);
            Assert.True(logits.allclose(expected, rtol: Tol, atol: Tol), $"logits, {options?.ToString() ?? "full"}");
            Assert.Equal(n, cache.Length);
            for (int i = 0; i < model.Layers.Count; i++)
                Assert.True(cache.Keys(i).allclose(expectedCache.Keys(i), rtol: Tol, atol: Tol) && cache.Values(i).allclose(expectedCache.Values(i), rtol: Tol, atol: Tol));
        }
    }

    [Fact]
    public void RingRefusesCritiPrefill()
    {
        using var model = TinyModel(2);
        var plan = ApbPlan.Create(new PlanRequest { DocumentLength = 20, QuestionLength = 2, Hosts = 2, Mode = ParallelMode.Ring });
        var e = Assert.ThrowsAny<Exception>(() => Run(model, plan, new RingStrategy(), Tokens(new Random(1), 20, 61), [5, 6], 1, Small));
        Assert.Contains("CritiPrefill runs with dense, apb and star prefill, not ring", e.ToString());
    }
}
