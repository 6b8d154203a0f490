namespace ApbCluster.Cli.Load;

/// <summary>
/// A running query's inter-token gaps split by when another query's prefill ran: gap i is the time from token i-1 to
/// token i (client clock). Before: it ended by the arrival. During: it overlaps [arrival, the arriving query's first
/// token], the other's prefill (with its question pass). After: it began once the other's first token was out.
/// </summary>
internal sealed record StallGaps(IReadOnlyList<double> Before, IReadOnlyList<double> During, IReadOnlyList<double> After)
{
    public double? BeforeMedianMs => LoadSummary.Percentile(Sorted(Before), 0.50);

    public double? DuringMaxMs => During.Count == 0 ? null : During.Max();

    public double? DuringP95Ms => LoadSummary.Percentile(Sorted(During), 0.95);

    public double? AfterMedianMs => LoadSummary.Percentile(Sorted(After), 0.50);

    /// <param name="tokenMs">When each token of the running query arrived, ascending.</param>
    /// <param name="arrivalMs">When the other query was sent, on the same clock.</param>
    /// <param name="prefillEndMs">When the other query's first token arrived, on the same clock.</param>
    public static StallGaps Of(IReadOnlyList<double> tokenMs, double arrivalMs, double prefillEndMs)
    {
        if (prefillEndMs < arrivalMs) throw new ArgumentException($"the prefill ended ({prefillEndMs} ms) before it arrived ({arrivalMs} ms)");
        var before = new List<double>();
        var during = new List<double>();
        var after = new List<double>();
        for (int i = 1; i < tokenMs.Count; i++)
        {
            double from = tokenMs[i - 1], to = tokenMs[i];
            if (to < from) throw new ArgumentException($"token {i} arrived before token {i - 1}");
            (to <= arrivalMs ? before : from >= prefillEndMs ? after : during).Add(to - from);
        }
        return new StallGaps(before, during, after);
    }

    internal static List<double> Sorted(IEnumerable<double> values) => values.Order().ToList();
}
