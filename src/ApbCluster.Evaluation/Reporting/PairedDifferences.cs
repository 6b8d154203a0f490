using ApbCluster.Evaluation.Running;

namespace ApbCluster.Evaluation.Reporting;

/// <summary>
/// How far a mode is from a reference mode on the same samples, at one length and H: every (task, sample) that both
/// ran gives d = correct(mode) - correct(reference), -1, 0 or 1. <see cref="Points"/> is their mean in accuracy points
/// (equal samples per task, so it is the difference of the task-averaged accuracies) and <see cref="HalfWidth95"/>
/// the half-width of its 95 % interval (1.96 standard errors of the mean of d). Pairing cancels how hard each sample
/// is, so the interval is much narrower than two cells' own intervals would suggest.
/// </summary>
public sealed record PairedDifference(int Length, int Hosts, string Mode, string Reference, int Pairs, double Points, double HalfWidth95)
{
    /// <summary>"-3.2 ± 1.9", or "-3.2" when there is a single pair.</summary>
    public string Text() => Pairs > 1
        ? FormattableString.Invariant($"{Points:+0.0;-0.0;0.0} ± {HalfWidth95:F1}")
        : FormattableString.Invariant($"{Points:+0.0;-0.0;0.0}");
}

public static class PairedDifferences
{
    /// <summary>Every other mode against <paramref name="reference"/>, per length and H, over the samples both ran;
    /// empty when the reference mode is not in the rows.</summary>
    public static IReadOnlyList<PairedDifference> Against(IEnumerable<EvalRow> rows, string reference, Func<string, bool>? modes = null)
    {
        var all = rows.ToList();
        var refs = all.Where(r => r.Mode == reference).ToDictionary(r => (r.Task, r.Length, r.Hosts, r.Sample), r => r.Correct);
        if (refs.Count == 0) return [];
        return all.Where(r => r.Mode != reference && (modes is null || modes(r.Mode)))
            .GroupBy(r => (r.Length, r.Hosts, r.Mode))
            .Select(g =>
            {
                var d = g.Select(r => refs.TryGetValue((r.Task, r.Length, r.Hosts, r.Sample), out bool byReference)
                        ? Score(r.Correct) - Score(byReference) : (double?)null)
                    .OfType<double>().ToList();
                if (d.Count == 0) return null;
                double mean = d.Average();
                double sd = d.Count > 1 ? Math.Sqrt(d.Sum(x => (x - mean) * (x - mean)) / (d.Count - 1)) : 0;
                return new PairedDifference(g.Key.Length, g.Key.Hosts, g.Key.Mode, reference, d.Count, 100 * mean, 100 * 1.96 * sd / Math.Sqrt(d.Count));
            })
            .OfType<PairedDifference>()
            .ToList();
    }

    private static double Score(bool correct) => correct ? 1 : 0;
}
