using ApbCluster.Parallel.Plan;
using Xunit;

namespace ApbCluster.Parallel.Tests.Apb;

public class PlanTests
{
    [Fact]
    public void PaperDefaultsAt128K()
    {
        var p = ApbPlan.Create(new PlanRequest { DocumentLength = 131072, Hosts = 8, AnchorDivisor = 4, Split = BlockSplit.Equal });
        Assert.Equal(16384, p.BlockLength);
        Assert.Equal(4096, p.AnchorLength);
        Assert.Equal(2048, p.PassingLength);
        Assert.Equal(0, p.Padding);
    }

    [Fact]
    public void ServedDefaultsAt128KAreAnEighthAnchorAndCostBalancedBlocks()
    {
        var p = ApbPlan.Create(new PlanRequest { DocumentLength = 131072, Hosts = 4 });
        Assert.Equal(BlockSplit.Balanced, p.Split);
        Assert.Equal(32768 / 8, p.AnchorLength);
        Assert.Equal(32768 / 8, p.PassingLength);
        Assert.Equal(131072, p.Blocks.Sum(b => b.Length));
        // Host 0 has no anchor and no passing to attend: it takes the longest block, the last host the shortest.
        Assert.True(p.Blocks.Zip(p.Blocks.Skip(1)).All(x => x.First.Length > x.Second.Length), p.ToString());
        var cost = CostModel.Default;
        var costs = p.Blocks.Select(b => cost.HostCost(b.Length, p.AnchorFor(b.Host), p.PassingFor(b.Host))).ToArray();
        Assert.True(costs.Max() / costs.Min() < 1.01, string.Join(", ", costs));
        // Lossless passing needs equal blocks, and gets them by default.
        Assert.Equal(BlockSplit.Equal, ApbPlan.Create(new PlanRequest { DocumentLength = 131072, Hosts = 4, PassAll = true }).Split);
    }

    [Fact]
    public void LargeDefaultsRoundToMultiplesOf64AndTinyOnesStayExact()
    {
        var big = ApbPlan.Create(new PlanRequest { DocumentLength = 3 * 10_000, Hosts = 3 });
        Assert.Equal(0, big.AnchorLength % 64);
        Assert.Equal(0, big.PassingLength % 64);
        var tiny = ApbPlan.Create(new PlanRequest { DocumentLength = 40, Hosts = 2, TemplateOffset = 0, AnchorDivisor = 4 });
        Assert.Equal((20 / 4, 20 / 8), (tiny.AnchorLength, tiny.PassingLength));
    }

    [Fact]
    public void DefaultAnchorHoldsTheWholeEmbeddedQuestionWhereTheBlockAllows()
    {
        // block 40: block/4 = 10 would cut the question (offset 16 + 12 tokens) off.
        var p = ApbPlan.Create(new PlanRequest { DocumentLength = 80, QuestionLength = 12, Hosts = 2, TemplateOffset = 16 });
        Assert.Equal(28, p.AnchorLength);
        // Host 0 keeps l_p selectable tokens after the anchor: block 20, l_p 2 -> l_a at most 18.
        var q = ApbPlan.Create(new PlanRequest { DocumentLength = 40, QuestionLength = 30, Hosts = 2, TemplateOffset = 16 });
        Assert.Equal(18, q.AnchorLength);
        // An explicit anchor is taken as given.
        Assert.Equal(4, ApbPlan.Create(new PlanRequest { DocumentLength = 80, QuestionLength = 12, Hosts = 2, AnchorLength = 4 }).AnchorLength);
    }

    [Theory]
    [InlineData(10, 4)]
    [InlineData(5, 4)]
    [InlineData(17, 8)]
    public void PaddingIsTrackedAtTheEnd(int n, int h)
    {
        var p = ApbPlan.Create(new PlanRequest { DocumentLength = n, Hosts = h, AnchorLength = 0, PassingLength = 0, Split = BlockSplit.Equal });
        Assert.Equal(0, p.PaddedLength % h);
        Assert.True(p.Blocks.All(b => b.Length == p.BlockLength));
        Assert.Equal(n, p.Blocks.Sum(b => b.RealLength));
        Assert.Equal(p.PaddedLength - n, p.Padding);
        for (int i = 0; i < h; i++) Assert.Equal(i * p.BlockLength, p.Blocks[i].Start);
        var doc = Enumerable.Range(100, n).Select(x => (long)x).ToArray();
        Assert.Equal(doc, Enumerable.Range(0, h).SelectMany(i => p.LocalTokens(i, doc, padId: -1)).Where(t => t >= 0));
    }

    [Fact]
    public void RingZigzagCoversEveryPositionOnce()
    {
        var p = ApbPlan.Create(new PlanRequest { DocumentLength = 13, Hosts = 3, Mode = ParallelMode.Ring });
        Assert.Equal(0, p.PaddedLength % 6);
        var all = Enumerable.Range(0, 3).SelectMany(p.LocalPositions).OrderBy(x => x).ToArray();
        Assert.Equal(Enumerable.Range(0, p.PaddedLength).Select(x => (long)x), all);
        var c = p.PaddedLength / 6;
        Assert.Equal(new long[] { 0, 1, 2 }.Take(c).Concat(Enumerable.Range(5 * c, c).Select(x => (long)x)), p.LocalPositions(0));
    }

    [Fact]
    public void AnchorEmbedsTheQuestionAtTheTemplateOffset()
    {
        var p = ApbPlan.Create(new PlanRequest { DocumentLength = 40, QuestionLength = 3, Hosts = 2, AnchorLength = 8, PassingLength = 2, TemplateOffset = 2 });
        var doc = Enumerable.Range(0, 40).Select(x => (long)x).ToArray();
        long[] q = [-1, -2, -3];
        Assert.Equal(new long[] { 0, 1, -1, -2, -3, 2, 3, 4 }, p.AnchorTokens(doc, q));
        Assert.Equal(0, p.AnchorFor(0));
        Assert.Equal(8, p.AnchorFor(1));
        Assert.Equal(2, p.PassingFor(1));
        var star = ApbPlan.Create(new PlanRequest { DocumentLength = 40, QuestionLength = 3, Hosts = 2, Mode = ParallelMode.Star });
        Assert.Equal(20, star.AnchorLength);
        Assert.Equal(doc.Take(20), star.AnchorTokens(doc, q));
    }

    [Fact]
    public void BalancedSplitEvensTheCost()
    {
        var cost = new CostModel(1, 2000);
        var r = new PlanRequest { DocumentLength = 64_000, Hosts = 4, Split = BlockSplit.Balanced, Cost = cost };
        var p = ApbPlan.Create(r);
        Assert.Equal(64_000, p.Blocks.Sum(b => b.Length));
        Assert.Equal(0, p.Padding);
        var costs = p.Blocks.Select(b => cost.HostCost(b.Length, p.AnchorFor(b.Host), p.PassingFor(b.Host))).ToArray();
        var equal = ApbPlan.Create(r with { Split = BlockSplit.Equal });
        var equalCosts = equal.Blocks.Select(b => cost.HostCost(b.Length, p.AnchorFor(b.Host), p.PassingFor(b.Host))).ToArray();
        Assert.True(costs.Max() / costs.Min() < 1.05, string.Join(",", costs));
        Assert.True(costs.Max() < equalCosts.Max());
        Assert.True(p.Blocks[0].Length > p.Blocks[3].Length); // host 0 has no anchor and no passing
    }

    [Theory]
    [InlineData(10, 11, ParallelMode.Apb, null, null, "hosts")]
    [InlineData(40, 2, ParallelMode.Apb, 21, 0, "anchorLength")]
    [InlineData(40, 2, ParallelMode.Apb, 0, 21, "passingLength")]
    [InlineData(40, 2, ParallelMode.Apb, 10, 11, "passingLength")]
    [InlineData(40, 3, ParallelMode.Ulysses, null, null, "numHeads")]
    [InlineData(40, 2, ParallelMode.Dense, null, null, "hosts")]
    [InlineData(40, 2, ParallelMode.Ring, 4, null, "anchorLength")]
    [InlineData(40, 2, ParallelMode.Star, null, 3, "passingLength")]
    [InlineData(0, 1, ParallelMode.Dense, null, null, "documentLength")]
    public void BadParametersNameTheParameterAndTheLimit(int n, int h, ParallelMode mode, int? la, int? lp, string parameter)
    {
        var e = Assert.Throws<PlanException>(() => ApbPlan.Create(new PlanRequest
        {
            DocumentLength = n, Hosts = h, Mode = mode, AnchorLength = la, PassingLength = lp, NumHeads = 4, NumKvHeads = 2, Split = BlockSplit.Equal,
        }));
        Assert.Equal(parameter, e.Parameter);
        Assert.Matches(@"\d", e.Message);
    }

    [Fact]
    public void GivenBlocksAreTakenAsTheyAreAndChecked()
    {
        var served = ApbPlan.Create(new PlanRequest { DocumentLength = 1000, QuestionLength = 5, Hosts = 3 });
        var again = ApbPlan.Create(new PlanRequest
        {
            DocumentLength = 1000, QuestionLength = 5, Hosts = 3, AnchorLength = served.AnchorLength, PassingLength = served.PassingLength,
            BlockLengths = served.Blocks.Select(b => b.Length).ToArray(),
        });
        Assert.Equal(served.Blocks, again.Blocks);
        Assert.Equal(BlockSplit.Balanced, again.Split);
        var e = Assert.Throws<PlanException>(() => ApbPlan.Create(new PlanRequest { DocumentLength = 1000, Hosts = 3, BlockLengths = [400, 400, 100] }));
        Assert.Equal("blockLengths", e.Parameter);
        Assert.Contains("cover 900 tokens", e.Message);
        Assert.Throws<PlanException>(() => ApbPlan.Create(new PlanRequest { DocumentLength = 1000, Hosts = 3, BlockLengths = [500, 500] }));
    }

    [Fact]
    public void UlyssesErrorsNameTheHeadCount()
    {
        var e = Assert.Throws<PlanException>(() => ApbPlan.Create(new PlanRequest
        { DocumentLength = 40, Hosts = 4, Mode = ParallelMode.Ulysses, NumHeads = 8, NumKvHeads = 2 }));
        Assert.Equal("numKvHeads", e.Parameter);
        Assert.Contains("key/value heads (2)", e.Message);
        Assert.Contains("hosts (4)", e.Message);
    }
}
