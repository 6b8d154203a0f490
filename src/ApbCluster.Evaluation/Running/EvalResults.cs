namespace ApbCluster.Evaluation.Running;

/// <summary>One sample run through one mode on H hosts.</summary>
public sealed record EvalRow(string Task, int Length, int Tokens, int Hosts, string Mode, int Sample, long Seed, double Depth,
    IReadOnlyList<string> Expected, string Prediction, bool Correct, double Seconds);

/// <summary>Accuracy (percent) of one task x length x hosts x mode cell.</summary>
public sealed record EvalCell(string Task, int Length, int Hosts, string Mode, int Samples, int Correct, double Accuracy, double MeanSeconds);

/// <summary>An eval run: every row, the aggregated cells, and how it was made.</summary>
public sealed record EvalReport(string Model, string Hardware, string Command, DateTimeOffset Started,
    List<EvalRow> Rows, List<EvalCell> Cells, List<string> Notes)
{
    public static List<EvalCell> Aggregate(IEnumerable<EvalRow> rows) =>
        rows.GroupBy(r => (r.Task, r.Length, r.Hosts, r.Mode))
            .Select(g => new EvalCell(g.Key.Task, g.Key.Length, g.Key.Hosts, g.Key.Mode, g.Count(), g.Count(r => r.Correct),
                100.0 * g.Count(r => r.Correct) / g.Count(), g.Average(r => r.Seconds)))
            .ToList();
}

/// <summary>Progress after each run: <see cref="Done"/> of <see cref="Total"/>, the cell just run and its accuracy so far.</summary>
public sealed record EvalProgress(int Done, int Total, string Cell, double CellAccuracy);
