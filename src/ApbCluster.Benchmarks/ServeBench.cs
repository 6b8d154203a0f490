using System.Diagnostics;
using ApbCluster.Model.Forward;
using ApbCluster.Model.Layers;
using ApbCluster.Parallel.Collectives;
using ApbCluster.Parallel.Compression;
using ApbCluster.Parallel.Phase2;
using ApbCluster.Parallel.Plan;
using ApbCluster.Parallel.Serving;
using ApbCluster.Parallel.Strategies;

namespace ApbCluster.Benchmarks;

/// <summary>
/// Many APB queries at once on <c>hosts</c> virtual hosts sharing one model (and, on a GPU, that GPU), the way a
/// cluster host runs them: each query its own collectives, threads and KV, prefill then Phase 2 with every host in
/// every layer. With <c>batch</c> each virtual host has a <see cref="DecodeBatcher"/> that its queries' decode steps
/// share (apb.gpu-host.batch-decode). Measures the decode window: from the first query's first token to the last
/// query's last token, every token of every query counted.
/// </summary>
public static class ServeBench
{
    private const int QuestionTokens = 16;

    /// <param name="batchWait">How long a host's batch holds for queries away on their peers (DecodeBatcher's wait).</param>
    public static ServeMeasurement Run(LlamaModel model, int hosts, int queries, int context, int steps, bool batch, long seed, TimeSpan batchWait = default)
    {
        if (hosts < 1 || queries < 1 || steps < 2) throw new ArgumentException("serve bench: at least one host, one query and two decode steps.");
        var rng = new Random((int)seed);
        int vocab = Math.Min(model.Config.VocabSize, 32000);
        long[] Random(int n) => Enumerable.Range(0, n).Select(_ => (long)rng.Next(vocab)).ToArray();
        var prompts = Enumerable.Range(0, queries).Select(_ => (Document: Random(context), Question: Random(QuestionTokens))).ToArray();
        var plan = ServingPlan.Create(ParallelMode.Apb, hosts, context, QuestionTokens, templateOffset: 16, new PlanChoices(), model.Config);
        model.Rope.EnsureCapacity(plan.PaddedLength + QuestionTokens + steps + 1); // the threads only read the table
        var batchers = Enumerable.Range(0, hosts).Select(_ => batch ? new DecodeBatcher(batchWait) : null).ToArray();
        var devices = Enumerable.Repeat(model.Device, hosts).ToArray();
        var clock = Stopwatch.StartNew();
        var tokenTimes = prompts.Select(_ => new List<double>()).ToArray();
        var runs = prompts.Select((p, q) => Task.Factory.StartNew(() => InProcessCollectiveGroup.Run(hosts, TimeSpan.FromMinutes(5), c =>
        {
            var options = new Phase2Options
            {
                MaxNewTokens = steps,
                StopIds = [], // random weights: never stop early, every query decodes every step
                Batcher = batchers[c.Rank],
                OnToken = c.Rank == hosts - 1 ? _ => { lock (tokenTimes[q]) tokenTimes[q].Add(clock.Elapsed.TotalMilliseconds); } : null,
            };
            var (shard, result) = ParallelRun.Host(c, model, plan, new ApbStrategy(new QueryAwareCompressor()), new PrefillRequest(p.Document, p.Question), options);
            shard.Dispose();
            return result;
        }, devices), TaskCreationOptions.LongRunning)).ToArray();
        Task.WaitAll(runs);
        double first = tokenTimes.Min(t => t[0]), last = tokenTimes.Max(t => t[^1]);
        // Tokens after each query's first (the first comes from prefill): what the decode window produced.
        long decoded = tokenTimes.Sum(t => (long)t.Count - 1);
        var perQueryMs = runs.Select(r => Median(r.Result[^1].StepTimes.Select(s => s.TotalMilliseconds))).ToArray();
        var overlap = tokenTimes.Max(t => t[0]) < tokenTimes.Min(t => t[^1]);
        var stats = batchers.Where(b => b is not null).Select(b => b!.Stats).ToArray();
        return new ServeMeasurement(hosts, queries, context, steps, batch)
        {
            BatchWaitMs = batchWait.TotalMilliseconds,
            DecodeTokensPerSecond = decoded / ((last - first) / 1000),
            MsPerTokenMedian = Median(perQueryMs),
            DecodesOverlapped = overlap,
            SharedCalls = stats.Sum(s => s.SharedCalls),
            Calls = stats.Sum(s => s.Calls),
            Widest = stats.Length == 0 ? 1 : stats.Max(s => s.Widest),
            GpuGiB = GpuClock.UsedGiB(model.Device),
        };
    }

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length == 0 ? 0 : sorted[sorted.Length / 2];
    }
}

/// <summary>One <see cref="ServeBench"/> run: aggregate decode tokens/s over the decode window, each query's median
/// ms per token, and what the hosts' batchers shared (calls that served several queries, of all batched calls).</summary>
public sealed record ServeMeasurement(int Hosts, int Queries, int Context, int Steps, bool BatchDecode)
{
    public double BatchWaitMs { get; init; }
    public double DecodeTokensPerSecond { get; init; }
    public double MsPerTokenMedian { get; init; }
    /// <summary>Every query was decoding at some common moment (otherwise the aggregate is a sequence, not a batch).</summary>
    public bool DecodesOverlapped { get; init; }
    public long SharedCalls { get; init; }
    public long Calls { get; init; }
    public int Widest { get; init; }
    public double GpuGiB { get; init; }
}
