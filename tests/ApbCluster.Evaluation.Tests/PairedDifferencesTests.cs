using ApbCluster.Evaluation.Reporting;
using ApbCluster.Evaluation.Running;
using Xunit;

namespace ApbCluster.Evaluation.Tests;

/// <summary>The report's differences against dense and star: paired per task and sample, with a 95 % interval.</summary>
public class PairedDifferencesTests
{
    private static EvalRow Row(string mode, int sample, bool correct, int hosts = 4, string task = "single-needle") =>
        new(task, 2048, 2048, hosts, mode, sample, 0, 0.5, ["1"], correct ? "1" : "2", correct, 0.1);

    private static List<EvalRow> Rows(string mode, params bool[] correct) => correct.Select((c, i) => Row(mode, i, c)).ToList();

    [Fact]
    public void TheDifferenceIsTheMeanOfThePairsWithItsInterval()
    {
        var rows = Rows("dense", true, true, false, false)
            .Concat(Rows("apb-retaining", true, false, false, true))   // d = 0, -1, 0, 1
            .Concat(Rows("star", true, true, true, true))              // d = 0, 0, 1, 1
            .Append(Row("star", 7, true))                               // no dense row for sample 7: not a pair
            .ToList();

        var diffs = PairedDifferences.Against(rows, "dense").ToDictionary(d => d.Mode);

        Assert.Equal(2, diffs.Count);
        Assert.Equal(4, diffs["apb-retaining"].Pairs);
        Assert.Equal(0, diffs["apb-retaining"].Points, 9);
        // sd of (0, -1, 0, 1) = sqrt(2/3); 1.96 * sd / sqrt(4) = 0.800
        Assert.Equal(100 * 1.96 * Math.Sqrt(2.0 / 3) / 2, diffs["apb-retaining"].HalfWidth95, 9);
        Assert.Equal(4, diffs["star"].Pairs);
        Assert.Equal(50, diffs["star"].Points, 9);
        Assert.Equal("+50.0 ± 56.6", diffs["star"].Text());
    }

    [Fact]
    public void PairsAreMadePerHostCountAndTask()
    {
        var rows = new List<EvalRow>
        {
            Row("dense", 0, true, hosts: 2), Row("apb-query", 0, false, hosts: 2),
            Row("dense", 0, false, hosts: 8), Row("apb-query", 0, true, hosts: 8),
            Row("dense", 0, true, hosts: 8, task: "multi-key"), Row("apb-query", 0, true, hosts: 8, task: "multi-key"),
        };

        var diffs = PairedDifferences.Against(rows, "dense").ToDictionary(d => d.Hosts);

        Assert.Equal(-100, diffs[2].Points, 9);
        Assert.Equal("-100.0", diffs[2].Text()); // one pair: no interval
        Assert.Equal(2, diffs[8].Pairs);
        Assert.Equal(50, diffs[8].Points, 9);
    }

    [Fact]
    public void TheReportShowsTablesAgainstDenseAndAgainstStarForApbModesOnly()
    {
        var rows = Rows("dense", true, true, false, false)
            .Concat(Rows("star", true, true, true, true))
            .Concat(Rows("apb-retaining", true, false, false, true)).ToList();
        var report = new EvalReport("m", "CPU", "apb eval", DateTimeOffset.UnixEpoch, rows, EvalReport.Aggregate(rows), []);

        var md = EvalReportWriter.Markdown(report);

        Assert.Contains("## every mode minus dense, on the same samples", md);
        Assert.Contains("| length | hosts | star | apb-retaining |", md);
        Assert.Contains("| 2048 | 4 | +50.0 ± 56.6 | 0.0 ± 80.0 |", md);
        Assert.Contains("## the APB modes minus star, on the same samples", md);
        Assert.Contains("| 2048 | 4 | -50.0 ± 56.6 |", md); // apb-retaining vs star: d = 0, -1, -1, 0
    }

    [Fact]
    public void NoReferenceModeMeansNoTable()
    {
        var rows = Rows("apb-query", true, false);
        var report = new EvalReport("m", "CPU", "apb eval", DateTimeOffset.UnixEpoch, rows, EvalReport.Aggregate(rows), []);

        Assert.Empty(PairedDifferences.Against(rows, "dense"));
        Assert.DoesNotContain("minus", EvalReportWriter.Markdown(report));
    }
}
