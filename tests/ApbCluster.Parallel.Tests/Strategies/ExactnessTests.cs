using ApbCluster.Parallel.Compression;
using ApbCluster.Parallel.Plan;
using ApbCluster.Parallel.Strategies;
using Xunit;
using static ApbCluster.Parallel.Tests.Strategies.StrategyFixture;

namespace ApbCluster.Parallel.Tests.Strategies;

/// <summary>Spec "Exactness properties": each case draws H in 1..8, a length not divisible by H, a GQA ratio.</summary>
public class ExactnessTests
{
    public static TheoryData<int> Seeds => new(Enumerable.Range(1, 8));

    private static (int H, int N, int KvHeads, Random Rng) Draw(int seed, bool divisibleHeads = false)
    {
        var rng = new Random(seed);
        int h = rng.Next(1, 9);
        if (divisibleHeads) h = new[] { 1, 2, 4, 8 }[rng.Next(4)];
        int kv = new[] { 8, 4, 2, 1 }[rng.Next(4)]; // GQA ratio 1, 2, 4, 8
        if (divisibleHeads) kv = Math.Max(kv, h);
        int n = rng.Next(2 * h + 1, 6 * h + 12);
        if (h > 1 && n % h == 0) n++;
        return (h, n, kv, rng);
    }

    [Theory, MemberData(nameof(Seeds))]
    public void ApbWithoutAnchorPassingEverythingEqualsDense(int seed)
    {
        var (h, n, kv, rng) = Draw(seed);
        using var model = TinyModel(kv, seed);
        var doc = Tokens(rng, n, 61);
        var question = Tokens(rng, 3, 61);
        var plan = ApbPlan.Create(new PlanRequest { DocumentLength = n, QuestionLength = 3, Hosts = h, AnchorLength = 0, PassAll = true });
        var compressor = RetainingHeadCompressor.CreateRandom(2, 64, kv * 8, kv, seed);
        var runs = Run(model, plan, new ApbStrategy(compressor), doc, question, 8);
        AssertShardsMatchDense(DenseHidden(model, doc), runs.Select(r => r.Shard), n);
        Assert.Equal(DenseGreedy(model, doc, question, 8), runs[^1].Result.Tokens);
    }

    [Theory, MemberData(nameof(Seeds))]
    public void RingEqualsDense(int seed)
    {
        var (h, n, kv, rng) = Draw(seed);
        using var model = TinyModel(kv, seed);
        var doc = Tokens(rng, n, 61);
        var plan = ApbPlan.Create(new PlanRequest { DocumentLength = n, QuestionLength = 2, Hosts = h, Mode = ParallelMode.Ring });
        var runs = Run(model, plan, new RingStrategy(), doc, Tokens(rng, 2, 61), 4);
        AssertShardsMatchDense(DenseHidden(model, doc), runs.Select(r => r.Shard), n);
    }

    [Theory, MemberData(nameof(Seeds))]
    public void UlyssesEqualsDense(int seed)
    {
        var (h, n, kv, rng) = Draw(seed, divisibleHeads: true);
        using var model = TinyModel(kv, seed);
        var doc = Tokens(rng, n, 61);
        var plan = ApbPlan.Create(new PlanRequest
        { DocumentLength = n, QuestionLength = 2, Hosts = h, Mode = ParallelMode.Ulysses, NumHeads = 8, NumKvHeads = kv });
        var runs = Run(model, plan, new UlyssesStrategy(), doc, Tokens(rng, 2, 61), 4);
        AssertShardsMatchDense(DenseHidden(model, doc), runs.Select(r => r.Shard), n);
    }

    [Theory]
    [InlineData(ParallelMode.Ring, 3, 2)]
    [InlineData(ParallelMode.Ulysses, 4, 4)]
    [InlineData(ParallelMode.Apb, 5, 1)]
    [InlineData(ParallelMode.Dense, 1, 8)]
    public void GreedyTokensMatchDenseFor32Steps(ParallelMode mode, int h, int kv)
    {
        var rng = new Random(h * 10 + kv);
        using var model = TinyModel(kv, 7);
        int n = 7 * h + 3;
        var doc = Tokens(rng, n, 61);
        var question = Tokens(rng, 4, 61);
        var plan = ApbPlan.Create(new PlanRequest
        {
            DocumentLength = n, QuestionLength = 4, Hosts = h, Mode = mode, NumHeads = 8, NumKvHeads = kv,
            AnchorLength = mode == ParallelMode.Apb ? 0 : null, PassAll = mode == ParallelMode.Apb,
        });
        var runs = Run(model, plan, ParallelRun.For(mode, new RandomCompressor(1)), doc, question, 32);
        var expected = DenseGreedy(model, doc, question, 32);
        foreach (var r in runs) Assert.Equal(expected, r.Result.Tokens); // every host saw the same broadcast tokens
    }
}
