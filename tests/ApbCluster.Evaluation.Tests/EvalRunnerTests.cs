using ApbCluster.Evaluation.Reporting;
using ApbCluster.Evaluation.Running;
using ApbCluster.Evaluation.Tasks;
using ApbCluster.Parallel.Compression;
using Xunit;

namespace ApbCluster.Evaluation.Tests;

/// <summary>End to end on a tiny random model: structure and determinism (accuracy is ~0 with random weights).</summary>
public class EvalRunnerTests
{
    private static EvalOptions Options => new()
    {
        Tasks = [EvalTask.SingleNeedle, EvalTask.VariableTracking],
        Lengths = [640],
        Hosts = [2, 4],
        Modes = EvalModes.All,
        Samples = 1,
        Seed = 5,
    };

    private static EvalReport Run(EvalOptions o, List<EvalProgress>? progress = null)
    {
        using var model = TinyEvalModel.Load();
        var c = model.Config;
        var heads = RetainingHeadCompressor.CreateRandom(c.NumLayers, c.NumHeads * c.HeadDim, c.NumKvHeads * c.HeadDim, c.NumKvHeads, seed: 3);
        var runner = new EvalRunner(model, TinyEvalModel.Folder.Tokenizer, heads);
        return runner.Run(o, "tiny", "CPU", "test", p => progress?.Add(p));
    }

    [Fact]
    public void EveryCellGetsARowAndTheRunIsDeterministic()
    {
        var progress = new List<EvalProgress>();
        var first = Run(Options, progress);
        var o = Options;
        int cells = o.Tasks.Count * o.Lengths.Count * o.Hosts.Count * o.Modes.Count;
        Assert.Equal(cells, first.Cells.Count);
        Assert.Equal(cells * o.Samples, first.Rows.Count);
        Assert.All(first.Cells, c => Assert.Equal(o.Samples, c.Samples));
        Assert.All(first.Cells, c => Assert.InRange(c.Accuracy, 0, 100));
        Assert.All(first.Rows, r => Assert.InRange(r.Tokens, 634, 646));
        Assert.Equal(Enumerable.Range(1, first.Rows.Count), progress.Select(p => p.Done));
        Assert.All(progress, p => Assert.Equal(first.Rows.Count, p.Total));

        var second = Run(Options);
        Assert.Equal(first.Rows.Select(r => (r.Task, r.Hosts, r.Mode, r.Prediction, r.Correct)),
            second.Rows.Select(r => (r.Task, r.Hosts, r.Mode, r.Prediction, r.Correct)));

        var dir = Path.Combine(Path.GetTempPath(), "apb-eval-" + Guid.NewGuid().ToString("N")[..8]);
        var files = EvalReportWriter.Write(first, dir);
        Assert.All(files, f => Assert.True(new FileInfo(f).Length > 0, f));
        var md = File.ReadAllText(Path.Combine(dir, "eval.md"));
        Assert.Contains("| task | length | hosts | dense | star | apb-query | apb-retaining | apb-random | apb-no-anchor | apb-no-passing | apb-plain-anchor |", md);
        Assert.Contains("| **average** | 640 | 4 |", md);
    }

    [Fact]
    public void ATimeLimitKeepsTheSameSamplesInEveryCellAndSaysSo()
    {
        // A limit that has passed once the first sample is done: exactly one sample runs, in every cell.
        var o = Options with { Samples = 3, Modes = [EvalMode.Dense, EvalMode.ApbQuery], TimeLimit = TimeSpan.FromTicks(1) };
        var cut = Run(o);
        Assert.Equal(o.Tasks.Count * o.Hosts.Count * o.Modes.Count, cut.Cells.Count);
        Assert.All(cut.Cells, c => Assert.Equal(1, c.Samples));
        Assert.All(cut.Rows, r => Assert.Equal(0, r.Sample));
        Assert.Contains(cut.Notes, n => n == EvalRunner.TimeLimitNotePrefix + "0 s: 1 of 3 samples a cell were run.");

        // Merged with a shard that ran to the end, the report says how many shards were cut and what the cells hold.
        var rest = Run(o with { TimeLimit = null, ShardIndex = 1, ShardCount = 2 });
        var merged = EvalReport.Merge([cut, rest]);
        Assert.Contains(merged.Notes, n => n.StartsWith("1 of 2 shards were " + EvalRunner.TimeLimitNotePrefix, StringComparison.Ordinal)
            && n.EndsWith("cells hold 2 samples.", StringComparison.Ordinal));
        Assert.DoesNotContain(merged.Notes, n => n.StartsWith(EvalRunner.TimeLimitNotePrefix, StringComparison.Ordinal));
        Assert.Contains("Samples per cell: 2.", EvalReportWriter.Markdown(merged));
    }

    [Theory]
    [InlineData("injected kernel failure", "injected kernel failure")]
    [InlineData("The following operation failed in the TorchScript interpreter.\n  r = torch._x()\nRuntimeError: Expected mha_graph.execute(...) to be true\n", "RuntimeError: Expected mha_graph.execute(...) to be true")]
    [InlineData("INTERNAL ASSERT FAILED at c10/core/Scalar.h:123\nException raised from toLong at c10/core/Scalar.h:123 (most recent call first):\nframe #0: c10::Error\nframe #1: [0x7ff3]", "INTERNAL ASSERT FAILED at c10/core/Scalar.h:123")]
    public void AnErrorsHeadlineIsItsMessageNotItsStack(string message, string headline) =>
        Assert.Equal(headline, EvalRunner.Headline(new InvalidOperationException(message)));

    [Fact]
    public void AMergeNamesTheShardsWhoseReportsAreMissing()
    {
        var o = Options with { Tasks = [EvalTask.SingleNeedle], Hosts = [2], Modes = [EvalMode.Dense], Samples = 3, ShardCount = 3 };
        var all = Enumerable.Range(0, 3).Select(i => Run(o with { ShardIndex = i })).ToList();
        Assert.Contains("merged from the 3 reports of `--shard I/3` runs of the command above.", EvalReport.Merge(all).Notes);
        Assert.Contains("merged from 2 of the 3 reports of `--shard I/3` runs of the command above; missing (failed runs): shard 1.",
            EvalReport.Merge([all[0], all[2]]).Notes);
    }

    /// <summary>Fails the calls numbered [from, to) (counting from 0) and passes the others to the heads.</summary>
    private sealed class FailingCompressor(ICompressor inner, int from, int to) : ICompressor
    {
        public int Calls;
        public bool NeedsQuestion => inner.NeedsQuestion;
        public TorchSharp.torch.Tensor Score(CompressorInput input)
        {
            int call = Interlocked.Increment(ref Calls) - 1;
            return call >= from && call < to ? throw new InvalidOperationException("injected kernel failure") : inner.Score(input);
        }
    }

    [Fact]
    public void AFailedRunDropsItsSampleFromEveryCellAndTheEvaluationGoesOn()
    {
        using var model = TinyEvalModel.Load();
        var c = model.Config;
        var heads = RetainingHeadCompressor.CreateRandom(c.NumLayers, c.NumHeads * c.HeadDim, c.NumKvHeads * c.HeadDim, c.NumKvHeads, seed: 3);
        var o = Options with { Tasks = [EvalTask.SingleNeedle], Hosts = [2], Modes = [EvalMode.Dense, EvalMode.ApbRetaining], Samples = 1 };
        // How many times one sample calls the heads, then a run whose second sample fails on its first call.
        var counter = new FailingCompressor(heads, 0, 0);
        new EvalRunner(model, TinyEvalModel.Folder.Tokenizer, counter).Run(o, "tiny", "CPU", "test");
        int perSample = counter.Calls;
        Assert.True(perSample > 0);
        var failing = new FailingCompressor(heads, perSample, perSample + 1);
        var report = new EvalRunner(model, TinyEvalModel.Folder.Tokenizer, failing).Run(o with { Samples = 3 }, "tiny", "CPU", "test");
        Assert.All(report.Cells, cell => Assert.Equal(2, cell.Samples));
        Assert.Equal([0, 2], report.Rows.Select(r => r.Sample).Distinct().Order());
        Assert.Contains(report.Notes, n => n.StartsWith(EvalRunner.ErrorNotePrefix + "sample 1, in single-needle 640 H=2 apb-retaining: ", StringComparison.Ordinal)
            && n.Contains("injected kernel failure", StringComparison.Ordinal));

        // An error on every sample is no passing fault: the run ends with it instead of an empty report.
        var always = new FailingCompressor(heads, 0, int.MaxValue);
        var e = Assert.ThrowsAny<Exception>(() => new EvalRunner(model, TinyEvalModel.Folder.Tokenizer, always).Run(o with { Samples = 5 }, "tiny", "CPU", "test"));
        Assert.Contains("injected kernel failure", e.ToString());
        Assert.InRange(always.Calls, EvalRunner.MaxFailedSamples, EvalRunner.MaxFailedSamples * perSample); // 3 samples tried, not 5
    }

    [Fact]
    public void TheAnchorDivisorSizesApbsAnchorAndOnlyIt()
    {
        using var model = TinyEvalModel.Load();
        var runner = new EvalRunner(model, TinyEvalModel.Folder.Tokenizer);
        // Long enough for l_b/8 to hold the embedded question (the plan never cuts the anchor shorter than that).
        var sample = runner.Generator.Generate(EvalTask.SingleNeedle, 2048, seed: 1, depth: 0.5);
        var paper = runner.RunTimed(sample, EvalMode.ApbQuery, 2, anchorDivisor: 4).Plan;
        var small = runner.RunTimed(sample, EvalMode.ApbQuery, 2).Plan; // the served default, block / 8
        Assert.Equal(paper.BlockLength / 4, paper.AnchorLength);
        Assert.Equal(paper.BlockLength / 8, small.AnchorLength);
        Assert.Equal(paper.PassingLength, small.PassingLength);
        // Star's anchor is its whole first block whatever the divisor.
        Assert.Equal(runner.RunTimed(sample, EvalMode.Star, 2).Plan.AnchorLength, runner.RunTimed(sample, EvalMode.Star, 2, anchorDivisor: 16).Plan.AnchorLength);
        var e = Assert.Throws<ArgumentException>(() => runner.Validate(Options with { Modes = [EvalMode.Dense], AnchorDivisor = 0 }));
        Assert.Contains("anchor divisor (0)", e.Message);
    }

    [Fact]
    public void RetainingModeWithoutHeadsIsAClearError()
    {
        using var model = TinyEvalModel.Load();
        var runner = new EvalRunner(model, TinyEvalModel.Folder.Tokenizer);
        var e = Assert.Throws<ArgumentException>(() => runner.Validate(Options));
        Assert.Contains("--retaining-heads", e.Message);
    }

    [Fact]
    public void LengthsBeyondTheModelsPositionsAreAClearError()
    {
        using var model = TinyEvalModel.Load();
        var runner = new EvalRunner(model, TinyEvalModel.Folder.Tokenizer);
        var e = Assert.Throws<ArgumentException>(() => runner.Validate(Options with { Lengths = [4096], Modes = [EvalMode.Dense] }));
        Assert.Contains("max_position_embeddings", e.Message);
    }
}
