using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using ApbCluster.Cli.Load;
using ApbCluster.Client;
using ApbCluster.Contracts;

namespace ApbCluster.Cli.Commands;

/// <summary>
/// `apb load`: N queries with different documents (seeded synthetic contexts) sent to a running cluster at once;
/// prints time to first token p50/p95, aggregate tokens/s and each query's queue/start/finish on the router's clock,
/// then runs every query again alone, one at a time, and fails (exit 1) if any answer's ids differ (greedy decoding
/// must not depend on what else ran beside it). With --stall it measures instead how a new prefill stalls a running
/// decode (<see cref="LoadStallMode"/>).
/// </summary>
internal static class LoadCommand
{
    public static Command Create()
    {
        var cluster = new Option<string>("--cluster") { Description = "host:port of a router node", Required = true };
        var queries = new Option<int>("--queries") { Description = "queries to send", DefaultValueFactory = _ => 8 };
        var concurrency = new Option<int?>("--concurrency") { Description = "most queries in flight at once (default: all of them)" };
        var contextTokens = new Option<int>("--context-tokens") { Description = "synthetic context length per query, in tokens (seeded ids 3..258, different per query)", DefaultValueFactory = _ => 512 };
        var maxNew = new Option<int>("--max-new-tokens", "-n") { Description = "tokens to generate per query", DefaultValueFactory = _ => 16 };
        var question = new Option<string>("--question", "-q") { Description = "the question of every query", DefaultValueFactory = _ => " What comes next?" };
        var mode = new Option<string>("--mode") { Description = "dense, ring, ulysses, star or apb", DefaultValueFactory = _ => "apb" };
        var seed = new Option<int>("--seed") { Description = "seed of the first query's context (query i uses seed+i)", DefaultValueFactory = _ => 1 };
        var noCheck = new Option<bool>("--no-check") { Description = "skip running each query again alone to compare the answers" };
        var queryTimeout = new Option<int>("--query-timeout") { Description = "seconds one query may take before it is cancelled", DefaultValueFactory = _ => 300 };
        var output = new Option<string?>("--out") { Description = "also write the report as JSON to this file" };
        var stall = new Option<bool>("--stall") { Description = "measure how long a new query's prefill stalls a running decode (instead of N concurrent queries)" };
        var decodeTokens = new Option<int>("--decode-tokens") { Description = "with --stall: tokens the running query decodes", DefaultValueFactory = _ => 256 };
        var arriveAfter = new Option<int>("--arrive-after") { Description = "with --stall: the running query's tokens before the long document is sent", DefaultValueFactory = _ => 16 };
        var repeat = new Option<int>("--repeat") { Description = "with --stall: trials, one after another", DefaultValueFactory = _ => 3 };
        var cmd = new Command("load", "Send N concurrent queries to a running cluster: TTFT p50/p95, tokens/s, overlap, and answers equal to each query run alone.")
            { cluster, queries, concurrency, contextTokens, maxNew, question, mode, seed, noCheck, queryTimeout, output, stall, decodeTokens, arriveAfter, repeat };
        cmd.SetAction(pr => CliRun.Guard(() =>
        {
            int n = pr.GetValue(queries), c = pr.GetValue(concurrency) ?? pr.GetValue(queries);
            if (n < 1) throw new CliUsageException($"--queries {n}: must be at least 1.");
            if (c < 1) throw new CliUsageException($"--concurrency {c}: must be at least 1.");
            if (pr.GetValue(maxNew) < 1) throw new CliUsageException($"--max-new-tokens {pr.GetValue(maxNew)}: must be at least 1.");
            if (pr.GetValue(queryTimeout) < 1) throw new CliUsageException($"--query-timeout {pr.GetValue(queryTimeout)}: must be at least 1 second.");
            var attention = Enum.TryParse<AttentionMode>(pr.GetValue(mode), ignoreCase: true, out var a) && Enum.IsDefined(a)
                ? a : throw new CliUsageException($"--mode '{pr.GetValue(mode)}': expected dense, ring, ulysses, star or apb.");
            var outFile = pr.GetValue(output);
            if (outFile is not null && Path.GetDirectoryName(Path.GetFullPath(outFile)) is { } dir && !Directory.Exists(dir))
                throw new CliUsageException($"--out '{outFile}': folder '{dir}' does not exist.");
            if (pr.GetValue(stall))
            {
                foreach (var notStall in new Option[] { queries, concurrency, noCheck })
                    if (pr.GetResult(notStall) is { Implicit: false })
                        throw new CliUsageException($"{notStall.Name} is not for --stall (it sends its own two queries per trial).");
                var settings = StallSettings(pr, attention, decodeTokens, arriveAfter, repeat, contextTokens, maxNew, question, seed, queryTimeout);
                return WithStdout(stdout => StallAsync(pr.GetValue(cluster)!, settings, outFile, stdout));
            }
            foreach (var stallOnly in new Option[] { decodeTokens, arriveAfter, repeat })
                if (pr.GetResult(stallOnly) is { Implicit: false })
                    throw new CliUsageException($"{stallOnly.Name} is for --stall.");
            var run = Enumerable.Range(0, n).Select(i => new SubmitQuery($"load-{Guid.NewGuid():N}",
                QueryContext.FromTokens(AskCommand.SyntheticContext(pr.GetValue(contextTokens), pr.GetValue(seed) + i)), pr.GetValue(question)!,
                GenerationOptions.Greedy(pr.GetValue(maxNew)), attention, null)).ToList();
            return WithStdout(stdout => RunAsync(pr.GetValue(cluster)!, run, c, !pr.GetValue(noCheck), TimeSpan.FromSeconds(pr.GetValue(queryTimeout)), outFile, stdout));
        }));
        return cmd;
    }

    /// <summary>The client's ActorSystem logs to Console.Out: the run gets the real stdout for its report, the logs go to stderr.</summary>
    private static int WithStdout(Func<TextWriter, Task<int>> run)
    {
        var stdout = Console.Out;
        Console.SetOut(Console.Error);
        try { return run(stdout).GetAwaiter().GetResult(); }
        finally { Console.SetOut(stdout); }
    }

    private static LoadStallMode.Settings StallSettings(ParseResult pr, AttentionMode attention, Option<int> decodeTokens, Option<int> arriveAfter,
        Option<int> repeat, Option<int> contextTokens, Option<int> maxNew, Option<string> question, Option<int> seed, Option<int> queryTimeout)
    {
        int decode = pr.GetValue(decodeTokens), after = pr.GetValue(arriveAfter), trials = pr.GetValue(repeat);
        if (after < 2) throw new CliUsageException($"--arrive-after {after}: must be at least 2 (the gaps before the arrival are the baseline).");
        if (decode <= after) throw new CliUsageException($"--decode-tokens {decode}: must be more than --arrive-after {after} (the running query must still decode when the document arrives).");
        if (trials < 1) throw new CliUsageException($"--repeat {trials}: must be at least 1.");
        if (pr.GetValue(contextTokens) < 1) throw new CliUsageException($"--context-tokens {pr.GetValue(contextTokens)}: must be at least 1.");
        return new LoadStallMode.Settings(decode, after, pr.GetValue(contextTokens), pr.GetValue(maxNew), trials, pr.GetValue(question)!, attention,
            pr.GetValue(seed), TimeSpan.FromSeconds(pr.GetValue(queryTimeout)));
    }

    private static async Task<int> StallAsync(string endpoint, LoadStallMode.Settings settings, string? outFile, TextWriter stdout)
    {
        await using var client = ClusterQueryClient.Connect([endpoint], new ClusterQueryClientOptions { IdleTimeout = settings.QueryBound });
        if (!await RouterAnswersAsync(client, endpoint)) return CliRun.Failed;
        return await LoadStallMode.RunAsync(client, endpoint, settings, outFile, stdout);
    }

    private static async Task<bool> RouterAnswersAsync(ClusterQueryClient client, string endpoint)
    {
        try
        {
            await client.StatusAsync(TimeSpan.FromSeconds(15));
            return true;
        }
        catch (Exception)
        {
            Console.Error.WriteLine($"error: no router answered at {endpoint} within 15 s (--cluster: a router node's CLUSTER_IP:CLUSTER_PORT).");
            return false;
        }
    }

    private static async Task<int> RunAsync(string endpoint, IReadOnlyList<SubmitQuery> queries, int concurrency, bool check, TimeSpan bound,
        string? outFile, TextWriter stdout)
    {
        await using var client = ClusterQueryClient.Connect([endpoint], new ClusterQueryClientOptions { IdleTimeout = bound });
        if (!await RouterAnswersAsync(client, endpoint)) return CliRun.Failed;
        var runner = new LoadRunner(client, bound);
        Console.Error.WriteLine($"load: {queries.Count} queries, {concurrency} at a time, to {endpoint}");
        var wall = Stopwatch.StartNew();
        var results = await runner.RunAsync(queries, concurrency, CancellationToken.None);
        double wallMs = wall.Elapsed.TotalMilliseconds;

        bool?[] same = new bool?[queries.Count];
        string?[] aloneErrors = new string?[queries.Count];
        if (check)
        {
            Console.Error.WriteLine("check: each query again, alone");
            for (int i = 0; i < queries.Count; i++)
            {
                if (!results[i].Completed) continue;
                var alone = (await runner.RunAsync([queries[i] with { QueryId = $"{queries[i].QueryId}-alone" }], 1, CancellationToken.None))[0];
                aloneErrors[i] = alone.Error;
                same[i] = alone.Completed && alone.TokenIds.SequenceEqual(results[i].TokenIds);
            }
        }
        int? mismatches = check ? same.Count(s => s == false) : null;
        var summary = LoadSummary.Of(results, concurrency, wallMs, mismatches);
        Print(stdout, results, summary, same, aloneErrors);
        if (outFile is not null) File.WriteAllText(outFile, Json(results, summary, same, aloneErrors));
        return summary.Completed == summary.Queries && (mismatches ?? 0) == 0 ? CliRun.Ok : CliRun.Failed;
    }

    private static void Print(TextWriter w, IReadOnlyList<LoadResult> results, LoadSummary s, bool?[] same, string?[] aloneErrors)
    {
        w.WriteLine(" #  queue_ms  started_ms  finished_ms  ttft_ms  total_ms  tokens  alone");
        foreach (var r in results)
            w.WriteLine($"{r.Index,2}  {Ms(r.QueueMs),8}  {Ms(r.Clock?.StartedMs),10}  {Ms(r.Clock?.FinishedMs),11}  {Ms(r.TimeToFirstTokenMs),7}  " +
                        $"{Ms(r.TotalMs),8}  {r.TokenIds.Count,6}  {(same[r.Index] switch { true => "same", false => "DIFFERENT", null => "-" })}" +
                        (r.Error is null ? "" : $"  error: {r.Error}") + (aloneErrors[r.Index] is { } e ? $"  alone: {e}" : ""));
        w.WriteLine($"completed {s.Completed}/{s.Queries} in {s.WallMs / 1000:0.00} s; {s.GeneratedTokens} tokens, {s.TokensPerSecond:0.0} tokens/s aggregate");
        w.WriteLine($"time to first token p50 {Ms(s.TtftP50Ms)} ms, p95 {Ms(s.TtftP95Ms)} ms; at most {s.MostRunningAtOnce} running at once (router clock)");
        w.WriteLine(s.Mismatches is { } m ? $"answers equal to each query alone: {s.Completed - m}/{s.Completed}" : "answers not checked (--no-check)");
    }

    private static string Ms(double? ms) => ms is { } v ? v.ToString("0.0", System.Globalization.CultureInfo.InvariantCulture) : "-";

    private static string Json(IReadOnlyList<LoadResult> results, LoadSummary s, bool?[] same, string?[] aloneErrors) =>
        JsonSerializer.Serialize(new
        {
            queries = s.Queries, concurrency = s.Concurrency, completed = s.Completed, wall_ms = s.WallMs, generated_tokens = s.GeneratedTokens,
            tokens_per_s = s.TokensPerSecond, ttft_p50_ms = s.TtftP50Ms, ttft_p95_ms = s.TtftP95Ms, most_running_at_once = s.MostRunningAtOnce,
            checked_alone = s.Mismatches is not null, mismatches = s.Mismatches,
            per_query = results.Select(r => new
            {
                index = r.Index, query_id = r.QueryId, error = r.Error, ttft_ms = r.TimeToFirstTokenMs, total_ms = r.TotalMs,
                tokens = r.TokenIds.Count, token_ids = r.TokenIds, queue_ms = r.QueueMs, dispatched_ms = r.Clock?.DispatchedMs, started_ms = r.Clock?.StartedMs,
                finished_ms = r.Clock?.FinishedMs, same_as_alone = same[r.Index], alone_error = aloneErrors[r.Index],
            }),
        }, new JsonSerializerOptions { WriteIndented = true });
}
