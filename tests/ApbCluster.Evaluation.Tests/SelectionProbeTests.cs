using ApbCluster.Evaluation.Analysis;
using ApbCluster.Evaluation.Tasks;
using Xunit;

namespace ApbCluster.Evaluation.Tests;

public class SelectionProbeTests
{
    [Fact]
    public void TheCompressorScoresWithTheQuestionsOwnRowsAndEveryScorerSeesTheNeedle()
    {
        using var model = TinyEvalModel.Load();
        var probe = new SelectionProbe(model, TinyEvalModel.Folder.Tokenizer, heads: null);
        var report = probe.Run(new ProbeOptions { Tasks = [EvalTask.SingleNeedle, EvalTask.MultiKey], Length = 512, Hosts = 3, Samples = 2 });

        // Layer 0's queries depend only on token and position: the anchor's question rows, re-projected at the
        // question's positions, must be the dense prompt's question queries (a row or position off by one is not).
        Assert.True(report.Layer0Difference < 1e-4, $"layer-0 question queries differ by {report.Layer0Difference}");
        Assert.Equal(4, report.Answers.Count);
        Assert.True(report.NeedleTokens > 0);
        foreach (var scorer in new[] { SelectionProbe.Shipped, SelectionProbe.DenseQuestion, SelectionProbe.SoftmaxAnchor,
                     SelectionProbe.SoftmaxDense, SelectionProbe.Oracle, SelectionProbe.Random })
        {
            var t = report.Totals(scorer);
            Assert.NotNull(t);
            // Every scorer selects l_p tokens per KV head at every (layer, host) that passes.
            Assert.True(t!.Chosen > 0 && t.NeedleChosen <= t.Needle && t.ChosenInTail <= t.Chosen, scorer);
        }
        // Retaining heads were not given: not scored.
        Assert.Null(report.Totals(SelectionProbe.Retaining));
        var md = report.Markdown("apb eval selection (test)");
        Assert.Contains("| dense attention of the question |", md);
        Assert.Contains("largest |q_anchor - q_dense|", md);
    }
}
