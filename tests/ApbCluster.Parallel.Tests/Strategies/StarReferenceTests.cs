using ApbCluster.Parallel.Plan;
using ApbCluster.Parallel.Strategies;
using ApbCluster.Parallel.Tests.Reference;
using Xunit;
using static ApbCluster.Parallel.Tests.Strategies.StrategyFixture;

namespace ApbCluster.Parallel.Tests.Strategies;

/// <summary>
/// Star attention against a float64 construction from its definition (explicit mask over [the document's
/// first l_a tokens; the host's own block]), for equal and cost-balanced splits.
/// </summary>
public class StarReferenceTests
{
    public static TheoryData<int> Seeds => new(Enumerable.Range(1, 8));

    /// <summary>Attention-heavy costs on tiny shapes, so the balanced split is visibly unequal (host 0 has no anchor).</summary>
    internal static readonly CostModel AttentionHeavy = new(PairCost: 1, TokenCost: 2);

    [Theory, MemberData(nameof(Seeds))]
    public void StarEqualsMaskedFp64ReferenceOnEqualBlocks(int seed)
    {
        var rng = new Random(seed);
        int h = rng.Next(1, 9), kv = new[] { 8, 4, 2, 1 }[rng.Next(4)];
        int n = rng.Next(2 * h + 1, 6 * h + 12);
        if (h > 1 && n % h == 0) n++; // padding on the last host
        var plan = ApbPlan.Create(new PlanRequest { DocumentLength = n, QuestionLength = 2, Hosts = h, Mode = ParallelMode.Star, Split = BlockSplit.Equal });
        Assert.All(plan.Blocks, b => Assert.Equal(plan.BlockLength, b.Length));
        AssertStarMatchesReference(plan, kv, seed, rng);
    }

    [Theory]
    [InlineData(1, 2, 2)]
    [InlineData(2, 3, 4)]
    [InlineData(3, 4, 1)]
    [InlineData(4, 5, 8)]
    public void StarEqualsMaskedFp64ReferenceOnBalancedBlocks(int seed, int h, int kv)
    {
        var rng = new Random(seed);
        int n = 9 * h + rng.Next(0, 7);
        var plan = ApbPlan.Create(new PlanRequest
        { DocumentLength = n, QuestionLength = 2, Hosts = h, Mode = ParallelMode.Star, Split = BlockSplit.Balanced, Cost = AttentionHeavy });
        Assert.True(plan.Blocks.Select(b => b.Length).Distinct().Count() > 1, $"blocks should be unequal: {plan}");
        AssertStarMatchesReference(plan, kv, seed, rng);
    }

    private static void AssertStarMatchesReference(ApbPlan plan, int kv, int seed, Random rng)
    {
        using var model = TinyModel(kv, seed);
        var doc = Tokens(rng, plan.DocumentLength, 61);
        var question = Tokens(rng, 2, 61);
        var runs = Run(model, plan, new StarStrategy(), doc, question, 6);
        var reference = StarReference.Run(new Fp64Llama(model), plan, doc);
        for (int i = 0; i < plan.Hosts; i++)
        {
            var shard = runs[i].Shard;
            Assert.Equal(reference[i].Positions, shard.Positions);
            ReferenceAssert.Close(shard.Hidden!, reference[i].Hidden, $"{plan}: host {i} hidden");
            for (int l = 0; l < model.Layers.Count; l++)
            {
                ReferenceAssert.Close(shard.Keys[l], reference[i].Keys[l], $"{plan}: host {i} layer {l} K");
                ReferenceAssert.Close(shard.Values[l], reference[i].Values[l], $"{plan}: host {i} layer {l} V");
            }
        }
        Assert.Equal(Phase2Reference.Greedy(new Fp64Llama(model), reference, question, 6), runs[^1].Result.Tokens);
    }
}
