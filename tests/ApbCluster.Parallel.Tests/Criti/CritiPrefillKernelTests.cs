using ApbCluster.NativeInterop;
using ApbCluster.Parallel.Kernels;
using ApbCluster.Parallel.Tests.Apb;
using Xunit;
using static ApbCluster.Parallel.Tests.Criti.CritiPrefillReference;
using static TorchSharp.torch;

namespace ApbCluster.Parallel.Tests.Criti;

/// <summary>CritiPrefill's estimation and attention against plain loops and explicit masks (CPU, small shapes).</summary>
public class CritiPrefillKernelTests
{
    private static readonly CritiPrefillOptions Small = new() { Segment = 8, Block = 2, Budget = 6, Threshold = 0 };

    public CritiPrefillKernelTests() => TorchRuntime.EnsureLoaded("cpu");

    [Fact]
    public void LayoutPrunesFromThresholdAndBudgetUpToTheLastSegment()
    {
        var o = Small with { Budget = 16 };
        var l = CritiPrefillLayout.For(70, 0, o); // segments 0..8, the last one 64..69
        Assert.Equal((2, 6, 16, 64, 28), (l.FirstPruned, l.PrunedSegments, l.PrunedStart, l.TailStart, l.CandidateBlocks));
        Assert.Equal(5, CritiPrefillLayout.For(70, 0, o with { Threshold = 40 }).FirstPruned);
        // An APB host's local block at global 100: the threshold is a global position.
        Assert.Equal(2, CritiPrefillLayout.For(70, 100, o with { Threshold = 101 }).FirstPruned);
        Assert.False(CritiPrefillLayout.For(70, 100, o with { Threshold = 4096 }).PrunesAnything);
        Assert.False(CritiPrefillLayout.For(70, 0, o with { Budget = 64 }).PrunesAnything); // every past fits
        Assert.False(CritiPrefillLayout.For(16, 0, o).PrunesAnything); // two segments: the second is the last
        Assert.False(CritiPrefillLayout.For(0, 0, o).PrunesAnything);
    }

    [Theory]
    [InlineData(4, 4, 70)]
    [InlineData(8, 2, 64)]
    [InlineData(6, 1, 57)]
    public void ScoresAndSelectionEqualTheLoopReference(int hq, int hkv, int rows)
    {
        manual_seed(hq * 100 + rows);
        var q = randn(1, rows, hq, 4);
        var k = randn(1, rows, hkv, 4);
        var layout = CritiPrefillLayout.For(rows, 0, Small);
        Assert.True(layout.PrunedSegments >= 3);
        var expected = Probabilities(q, k, layout);
        var (probs, later) = CritiPrefillCriticality.Scores(q, k, layout);
        Assert.Equal([layout.PrunedSegments, hkv, layout.CandidateBlocks], probs.shape);
        var flat = probs.to(ScalarType.Float64).data<double>().ToArray();
        Assert.Equal(expected.SelectMany(s => s.SelectMany(h => h)), flat, (a, b) => Math.Abs(a - b) < 1e-5);
        for (int m = 0; m < layout.PrunedSegments; m++)
            for (int b = 0; b < layout.CandidateBlocks; b++)
                Assert.Equal(b >= (layout.FirstPruned + m) * Small.Segment / Small.Block, later[m, 0, b].item<bool>());

        using var state = new CritiPrefillState(Small);
        var selection = CritiPrefillCriticality.Select(q, k, layout, state, layer: 0);
        Assert.Equal(TopBlocks(expected, Small.BudgetBlocks), ToArrays(selection.Blocks!));
    }

    [Fact]
    public void LaterBlocksAreNeverChosenEvenWhenTheyScoreHighest()
    {
        manual_seed(3);
        int rows = 64;
        var q = rand(1, rows, 4, 4) + 1; // positive queries
        var k = randn(1, rows, 2, 4);
        k.narrow(1, 40, 24).fill_(50); // the future looks most critical to everybody
        var layout = CritiPrefillLayout.For(rows, 0, Small);
        using var state = new CritiPrefillState(Small);
        var blocks = ToArrays(CritiPrefillCriticality.Select(q, k, layout, state, 0).Blocks!);
        for (int m = 0; m < blocks.Length; m++)
            foreach (var head in blocks[m])
                Assert.All(head, b => Assert.True((b + 1) * Small.Block <= (layout.FirstPruned + m) * Small.Segment,
                    $"segment {layout.FirstPruned + m} chose block {b}"));
        // Segments after row 40 do see the hot blocks before them.
        Assert.Contains(20, blocks[^1][0]);
    }

    [Fact]
    public void LayerFusionCarriesThePreviousLayersScoresFromTheThirdLayerOn()
    {
        int rows = 70, hq = 4, hkv = 2;
        var layout = CritiPrefillLayout.For(rows, 0, Small);
        using var state = new CritiPrefillState(Small);
        using var scoresOnly = new CritiPrefillState(Small);
        double[][][]? previous = null;
        for (int layer = 0; layer < 5; layer++)
        {
            manual_seed(40 + layer);
            var q = randn(1, rows, hq, 4);
            var k = randn(1, rows, hkv, 4);
            var own = Probabilities(q, k, layout);
            var expected = layer < 2 || previous is null ? own : Combine(previous, own, 0.25, 0.75);
            previous = expected;

            var fused = scoresOnly.Fuse(layer, CritiPrefillCriticality.Scores(q, k, layout).Probabilities);
            Assert.Equal(expected.SelectMany(s => s.SelectMany(h => h)), fused.to(ScalarType.Float64).data<double>().ToArray(),
                (a, b) => Math.Abs(a - b) < 1e-5);
            var blocks = CritiPrefillCriticality.Select(q, k, layout, state, layer).Blocks!;
            Assert.Equal(TopBlocks(expected, Small.BudgetBlocks), ToArrays(blocks));
        }
    }

    private static double[][][] Combine(double[][][] prev, double[][][] cur, double wp, double wc) =>
        prev.Select((s, m) => s.Select((h, j) => h.Select((p, b) => wp * p + wc * cur[m][j][b]).ToArray()).ToArray()).ToArray();

    [Theory]
    [InlineData(4, 4, 70, 0)]
    [InlineData(8, 2, 64, 0)]
    [InlineData(6, 3, 57, 20)]
    [InlineData(4, 1, 50, 1000)] // threshold beyond the rows: full causal
    public void PrunedAttentionEqualsTheSelectionsExplicitMask(int hq, int hkv, int rows, int threshold)
    {
        manual_seed(rows + hq);
        var q = randn(1, rows, hq, 8);
        var k = randn(1, rows, hkv, 8);
        var v = randn(1, rows, hkv, 8);
        var options = Small with { Threshold = threshold };
        var layout = CritiPrefillLayout.For(rows, 0, options);
        using var state = new CritiPrefillState(options);
        var selection = CritiPrefillCriticality.Select(q, k, layout, state, 0);
        var (o, lse) = CritiPrefillAttention.Attend(q, k, v, selection, 0.35);
        var mask = Mask(layout, selection.Blocks is null ? null : ToArrays(selection.Blocks), hq, hkv);
        var (ro, rlse) = ApbAttentionTests.MaskedReference(q, k, v, mask, 0.35);
        Assert.Equal(ScalarType.Float32, o.dtype);
        Assert.True(o.to(ScalarType.Float64).allclose(ro, rtol: 1e-5, atol: 1e-5), "outputs differ");
        Assert.True(lse.to(ScalarType.Float64).allclose(rlse, rtol: 1e-5, atol: 1e-5), "lse differs");
        if (threshold < rows) Assert.False(o.allclose(ApbAttentionTests.MaskedReference(q, k, v, Mask(layout with { PrunedSegments = 0 }, null, hq, hkv), 0.35).Out.to(ScalarType.Float32), 1e-3, 1e-3));
    }

    [Theory]
    [InlineData(5, 4, 64, 4, 2)]
    [InlineData(0, 6, 57, 8, 2)]
    [InlineData(7, 0, 64, 4, 4)]
    public void InsideApbPassingAndAnchorKeysStayVisibleToEveryLocalRow(int lp, int la, int ll, int hq, int hkv)
    {
        manual_seed(lp + la + ll);
        int d = 8;
        var q = randn(1, la + ll, hq, d);
        var k = randn(1, la + ll, hkv, d);
        var v = randn(1, la + ll, hkv, d);
        var pk = randn(1, lp, hkv, d);
        var pv = randn(1, lp, hkv, d);
        var options = Small with { Budget = 2 }; // one block of the local past per segment
        var layout = CritiPrefillLayout.For(ll, 1000, options);
        using var state = new CritiPrefillState(options);
        var selection = CritiPrefillCriticality.Select(q.narrow(1, la, ll), k.narrow(1, la, ll), layout, state, 0);
        Assert.True(layout.PrunedSegments >= 5);
        var (o, lse) = ApbAttention.Attend(q, k, v, la, lp > 0 ? pk : null, lp > 0 ? pv : null, 0.35, ApbKernel.Single, selection);

        // Keys [passing; anchor; local]: anchor rows causal over the anchor; local rows see all passing and anchor keys
        // plus the chosen local blocks and their own segment.
        var local = Mask(layout, ToArrays(selection.Blocks!), hq, hkv);
        var mask = zeros(hq, la + ll, lp + la + ll, dtype: ScalarType.Bool);
        mask.narrow(1, 0, la).narrow(2, lp, la).copy_(ones(la, la, dtype: ScalarType.Bool).tril().expand(hq, la, la));
        mask.narrow(1, la, ll).narrow(2, 0, lp + la).fill_(true);
        mask.narrow(1, la, ll).narrow(2, lp + la, ll).copy_(local);
        var (ro, rlse) = ApbAttentionTests.MaskedReference(q, cat([pk, k], 1), cat([pv, v], 1), mask, 0.35);
        Assert.True(o.to(ScalarType.Float64).allclose(ro, rtol: 1e-5, atol: 1e-5), "outputs differ");
        Assert.True(lse.to(ScalarType.Float64).allclose(rlse, rtol: 1e-5, atol: 1e-5), "lse differs");
    }

    [Theory]
    [InlineData(100, 32, 2048, 4096, "--criti-segment")]
    [InlineData(512, 32, 2000, 4096, "--criti-budget")]
    [InlineData(512, 0, 2048, 4096, "--criti-block")]
    [InlineData(0, 32, 2048, 4096, "--criti-segment")]
    [InlineData(512, 32, -32, 4096, "--criti-budget")]
    [InlineData(512, 32, 2048, -1, "--criti-threshold")]
    public void BadOptionsNameTheOption(int segment, int block, int budget, int threshold, string option)
    {
        var o = new CritiPrefillOptions { Segment = segment, Block = block, Budget = budget, Threshold = threshold };
        var e = Assert.Throws<CritiPrefillOptionsException>(() => o.Validate());
        Assert.Equal(option, e.Option);
        Assert.StartsWith(option + " ", e.Message);
        Assert.Equal("criti_" + option["--criti-".Length..], Assert.Throws<CritiPrefillOptionsException>(() => o.Validate("criti_")).Option);
    }

    [Fact]
    public void DefaultsAreTheReferences()
    {
        var o = new CritiPrefillOptions().Validate();
        Assert.Equal((512, 32, 2048, 4096, 0.25, 0.75, 2, 64), (o.Segment, o.Block, o.Budget, o.Threshold, o.FusionPrevious, o.FusionCurrent, o.UnfusedLayers, o.BudgetBlocks));
        Assert.Same(o, o.Validate("apb.router.criti-"));
    }
}
