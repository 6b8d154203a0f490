using System.Globalization;
using System.Text.Json;
using ApbCluster.Cli.Load;
using ApbCluster.Client;
using ApbCluster.Contracts;

namespace ApbCluster.Cli.Commands;

/// <summary>
/// `apb load --stall`: how long a new query's prefill stalls a running decode on the cluster as it is configured
/// (its hosts' apb.gpu-host.prefill-policy). Each trial: one query decodes --decode-tokens tokens over a short context;
/// after --arrive-after of them a query with a --context-tokens document is sent. Reports the running query's gaps
/// between tokens before the arrival (median) and during the other's prefill (max, p95), and the arriving query's
/// time to first token: the two sides of the policy's trade-off.
/// </summary>
internal static class LoadStallMode
{
    /// <summary>The running query's context: short, so its decode steps are cheap and its own prefill brief.</summary>
    public const int RunningContextTokens = 64;

    public sealed record Settings(int DecodeTokens, int ArriveAfter, int ContextTokens, int ArrivingMaxNew, int Repeat, string Question,
        AttentionMode Mode, int Seed, TimeSpan QueryBound);

    public static async Task<int> RunAsync(ClusterQueryClient client, string endpoint, Settings s, string? outFile, TextWriter stdout)
    {
        var runner = new StallRunner(client, s.QueryBound);
        Console.Error.WriteLine($"stall: {s.Repeat} trial(s) against {endpoint}: a query decoding {s.DecodeTokens} tokens " +
                                $"({RunningContextTokens}-token context); after {s.ArriveAfter} of them, a {s.ContextTokens}-token document arrives");
        var trials = new List<StallTrial>();
        for (int i = 0; i < s.Repeat; i++)
        {
            // The same running query every trial (greedy: the same tokens, so an end-of-sequence id cannot cut one trial short and
            // not another); a different document arrives each time.
            var running = new SubmitQuery($"stall-run-{Guid.NewGuid():N}", QueryContext.FromTokens(AskCommand.SyntheticContext(RunningContextTokens, s.Seed)),
                s.Question, GenerationOptions.Greedy(s.DecodeTokens), s.Mode, null);
            var arriving = new SubmitQuery($"stall-new-{Guid.NewGuid():N}", QueryContext.FromTokens(AskCommand.SyntheticContext(s.ContextTokens, s.Seed + 1 + i)),
                s.Question, GenerationOptions.Greedy(s.ArrivingMaxNew), s.Mode, null);
            trials.Add(await runner.RunAsync(running, arriving, s.ArriveAfter, CancellationToken.None));
        }
        Print(stdout, trials);
        if (outFile is not null) File.WriteAllText(outFile, Json(s, trials));
        return trials.All(t => t.Gaps is { During.Count: > 0 }) ? CliRun.Ok : CliRun.Failed;
    }

    private static void Print(TextWriter w, IReadOnlyList<StallTrial> trials)
    {
        w.WriteLine("trial  tokens  before_p50_ms  during_max_ms  during_p95_ms  during_gaps  after_p50_ms  arriving_ttft_ms");
        for (int i = 0; i < trials.Count; i++)
        {
            var t = trials[i];
            var g = t.Gaps;
            w.WriteLine($"{i + 1,5}  {t.TokenMs.Count,6}  {Ms(g?.BeforeMedianMs),13}  {Ms(g?.DuringMaxMs),13}  {Ms(g?.DuringP95Ms),13}  " +
                        $"{g?.During.Count.ToString(CultureInfo.InvariantCulture) ?? "-",11}  {Ms(g?.AfterMedianMs),12}  {Ms(t.ArrivingTtftMs),16}" +
                        (t.Error is null ? "" : $"  error: {t.Error}"));
        }
        var all = Pooled(trials);
        w.WriteLine($"all trials: gap before p50 {Ms(all.BeforeMedianMs)} ms; during the prefill max {Ms(all.DuringMaxMs)} ms, " +
                    $"p95 {Ms(all.DuringP95Ms)} ms ({all.During.Count} gaps); arriving query's time to first token p50 {Ms(TtftMedian(trials))} ms");
    }

    /// <summary>Every measured trial's gaps together.</summary>
    private static StallGaps Pooled(IEnumerable<StallTrial> trials)
    {
        var gaps = trials.Select(t => t.Gaps).OfType<StallGaps>().ToList();
        return new StallGaps(gaps.SelectMany(g => g.Before).ToList(), gaps.SelectMany(g => g.During).ToList(), gaps.SelectMany(g => g.After).ToList());
    }

    private static double? TtftMedian(IEnumerable<StallTrial> trials) =>
        LoadSummary.Percentile(StallGaps.Sorted(trials.Where(t => t.Completed).Select(t => t.ArrivingTtftMs).OfType<double>()), 0.50);

    private static string Ms(double? ms) => ms is { } v ? v.ToString("0.0", CultureInfo.InvariantCulture) : "-";

    private static object? Clock(RouterClock? c) => c is null ? null
        : new { submitted_ms = c.SubmittedMs, dispatched_ms = c.DispatchedMs, started_ms = c.StartedMs, finished_ms = c.FinishedMs };

    private static string Json(Settings s, IReadOnlyList<StallTrial> trials)
    {
        var all = Pooled(trials);
        return JsonSerializer.Serialize(new
        {
            mode = "stall", decode_tokens = s.DecodeTokens, arrive_after = s.ArriveAfter, running_context_tokens = RunningContextTokens,
            context_tokens = s.ContextTokens, arriving_max_new_tokens = s.ArrivingMaxNew, attention = s.Mode.ToString().ToLowerInvariant(),
            before_p50_ms = all.BeforeMedianMs, during_max_ms = all.DuringMaxMs, during_p95_ms = all.DuringP95Ms, during_gaps = all.During.Count,
            after_p50_ms = all.AfterMedianMs, arriving_ttft_p50_ms = TtftMedian(trials),
            trials = trials.Select(t => new
            {
                error = t.Error, tokens = t.TokenMs.Count, before_p50_ms = t.Gaps?.BeforeMedianMs, during_max_ms = t.Gaps?.DuringMaxMs,
                during_p95_ms = t.Gaps?.DuringP95Ms, after_p50_ms = t.Gaps?.AfterMedianMs, arriving_ttft_ms = t.ArrivingTtftMs,
                arrival_ms = double.IsNaN(t.ArrivalMs) ? (double?)null : t.ArrivalMs, arriving_first_token_ms = t.ArrivingFirstTokenMs,
                arriving_done_ms = t.ArrivingDoneMs, token_ms = t.TokenMs,
                before_gaps_ms = t.Gaps?.Before, during_gaps_ms = t.Gaps?.During, after_gaps_ms = t.Gaps?.After,
                running_router_clock = Clock(t.Running?.Clock), arriving_router_clock = Clock(t.Arriving?.Clock),
                arriving_prefill_ms = t.Arriving?.Timings.PrefillMs,
            }),
        }, new JsonSerializerOptions { WriteIndented = true });
    }
}
