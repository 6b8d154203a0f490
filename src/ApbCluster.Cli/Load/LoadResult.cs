using ApbCluster.Contracts;

namespace ApbCluster.Cli.Load;

/// <summary>One query of a load run as the client saw it: client times from its submission, the router's clock
/// from QueryCompleted, and the answer's ids (for the comparison with the same query run alone).</summary>
internal sealed record LoadResult(
    int Index,
    string QueryId,
    string? Error,
    double? TimeToFirstTokenMs,
    double TotalMs,
    IReadOnlyList<int> TokenIds,
    double? QueueMs,
    RouterClock? Clock)
{
    public bool Completed => Error is null;
}

/// <summary>What a load run measured and checked, ready to print or write as JSON.</summary>
internal sealed record LoadSummary(
    int Queries,
    int Concurrency,
    int Completed,
    double WallMs,
    int GeneratedTokens,
    double? TtftP50Ms,
    double? TtftP95Ms,
    int MostRunningAtOnce,
    int? Mismatches)
{
    /// <summary>Every generated token of the concurrent pass over its wall time.</summary>
    public double TokensPerSecond => WallMs > 0 ? GeneratedTokens / (WallMs / 1000) : 0;

    public static LoadSummary Of(IReadOnlyList<LoadResult> results, int concurrency, double wallMs, int? mismatches)
    {
        var ttft = results.Where(r => r.TimeToFirstTokenMs is not null).Select(r => r.TimeToFirstTokenMs!.Value).Order().ToList();
        return new LoadSummary(results.Count, concurrency, results.Count(r => r.Completed), wallMs, results.Sum(r => r.TokenIds.Count),
            Percentile(ttft, 0.50), Percentile(ttft, 0.95), MostAtOnce(results.Select(r => r.Clock).OfType<RouterClock>().ToList()), mismatches);
    }

    /// <summary>Nearest rank: the smallest value with at least <paramref name="p"/> of the values at or below it.</summary>
    public static double? Percentile(IReadOnlyList<double> sorted, double p) =>
        sorted.Count == 0 ? null : sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Count) - 1, 0, sorted.Count - 1)];

    /// <summary>The most queries whose [started, finished] intervals on the router's clock cover one instant.</summary>
    public static int MostAtOnce(IReadOnlyList<RouterClock> clocks)
    {
        // Ends sort before starts at the same instant: touching intervals did not run together.
        var events = clocks.SelectMany(c => new[] { (At: c.StartedMs, Delta: 1), (At: c.FinishedMs, Delta: -1) })
            .OrderBy(e => e.At).ThenBy(e => e.Delta);
        int running = 0, most = 0;
        foreach (var (_, delta) in events) most = Math.Max(most, running += delta);
        return most;
    }
}
