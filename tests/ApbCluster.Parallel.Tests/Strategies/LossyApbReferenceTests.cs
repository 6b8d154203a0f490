using ApbCluster.Parallel.Compression;
using ApbCluster.Parallel.Plan;
using ApbCluster.Parallel.Strategies;
using ApbCluster.Parallel.Tests.Reference;
using Xunit;
using static ApbCluster.Parallel.Tests.Strategies.StrategyFixture;

namespace ApbCluster.Parallel.Tests.Strategies;

/// <summary>
/// Lossy APB (0 &lt; l_a, 0 &lt; l_p &lt; l_b, H >= 3) end to end against <see cref="ApbReference"/>, a float64
/// construction of the anchor, scores, selection, passing blocks and mask from their definitions:
/// shard hidden states and K/V, every passing host's scores and selections, and Phase 2's greedy tokens.
/// </summary>
public class LossyApbReferenceTests
{
    private const int QuestionLength = 3, TemplateOffset = 3, AnchorLength = 8, PassingLength = 3, Steps = 6;

    [Theory]
    [InlineData("retaining", 3, 2, false, 1)]
    [InlineData("retaining", 4, 4, false, 2)]
    [InlineData("retaining", 3, 1, true, 3)]
    [InlineData("retaining", 4, 2, true, 4)]
    [InlineData("query", 3, 2, false, 5)]
    [InlineData("query", 4, 8, false, 6)]
    [InlineData("query", 3, 4, true, 7)]
    [InlineData("query", 4, 2, true, 8)]
    public void LossyApbEqualsFp64Reference(string compressor, int hosts, int kv, bool balanced, int seed)
    {
        var rng = new Random(seed);
        int n = 13 * hosts + rng.Next(0, hosts);
        var plan = ApbPlan.Create(new PlanRequest
        {
            DocumentLength = n, QuestionLength = QuestionLength, Hosts = hosts, AnchorLength = AnchorLength,
            PassingLength = PassingLength, TemplateOffset = TemplateOffset, Split = balanced ? BlockSplit.Balanced : BlockSplit.Equal,
            Cost = balanced ? StarReferenceTests.AttentionHeavy : null,
        });
        Assert.InRange(plan.PassingLength, 1, plan.BlockLength - 1);
        if (balanced) Assert.True(plan.Blocks.Select(b => b.Length).Distinct().Count() > 1, $"blocks should be unequal: {plan}");
        else Assert.All(plan.Blocks, b => Assert.Equal(plan.BlockLength, b.Length));

        using var model = TinyModel(kv, seed);
        var doc = Tokens(rng, n, 61);
        var question = Tokens(rng, QuestionLength, 61);
        ICompressor inner = compressor == "retaining"
            ? RetainingHeadCompressor.CreateRandom(model.Config.NumLayers, 64, kv * 8, kv, seed)
            : new QueryAwareCompressor();
        ReferenceScorer scorer = inner is RetainingHeadCompressor heads ? new ReferenceScorer.Retaining(heads) : new ReferenceScorer.QueryAware();
        var recording = new RecordingCompressor(inner);
        var runs = Run(model, plan, new ApbStrategy(recording), doc, question, Steps);

        var m = new Fp64Llama(model);
        var stats = new SelectionStats();
        var reference = new ApbReference(m, plan, doc, question).Run(scorer, recording, stats);
        Assert.Equal(model.Config.NumLayers * (hosts - 1) * kv, stats.Unique + stats.Tied);
        Assert.True(stats.Unique > 0, $"no selection was unique ({stats}): nothing checked the engine's choice exactly");
        for (int h = 0; h < hosts; h++)
        {
            var shard = runs[h].Shard;
            Assert.Equal(reference[h].Positions, shard.Positions);
            ReferenceAssert.Close(shard.Hidden!, reference[h].Hidden, $"{plan}: host {h} hidden ({stats})");
            for (int l = 0; l < model.Config.NumLayers; l++)
            {
                ReferenceAssert.Close(shard.Keys[l], reference[h].Keys[l], $"{plan}: host {h} layer {l} K");
                ReferenceAssert.Close(shard.Values[l], reference[h].Values[l], $"{plan}: host {h} layer {l} V");
            }
        }
        Assert.Equal(Phase2Reference.Greedy(m, reference, question, Steps), runs[^1].Result.Tokens);

        // The case is lossy: the last host's states differ from dense ones (what passing drops matters).
        var dense = DenseHidden(model, doc)[0].index_select(0, TorchSharp.torch.tensor(runs[^1].Shard.Positions));
        var lossy = (runs[^1].Shard.Hidden![0] - dense).abs().max().item<float>();
        Assert.True(lossy > 1e-3, $"the last host equals dense (max |diff| {lossy}): the case does not exercise lossy passing");
        TestContext.Current.TestOutputHelper?.WriteLine($"{plan}: {stats}; last host vs dense max |diff| {lossy:E2}");
    }
}
