using System.Diagnostics;
using ApbCluster.Evaluation.Scoring;
using ApbCluster.Evaluation.Tasks;
using ApbCluster.Model.KvStores;
using ApbCluster.Model.Layers;
using ApbCluster.Model.Tokenization;
using ApbCluster.Parallel.Collectives;
using ApbCluster.Parallel.Compression;
using ApbCluster.Parallel.Kernels;
using ApbCluster.Parallel.Phase2;
using ApbCluster.Parallel.Plan;
using ApbCluster.Parallel.Serving;
using ApbCluster.Parallel.Strategies;

namespace ApbCluster.Evaluation.Running;

/// <summary>
/// Runs generated samples through the modes on H virtual hosts (<see cref="ParallelRun.InProcess"/>), greedy,
/// with max new tokens from the expected answer's length, and scores them by exact match.
/// Dense runs once per sample (one host) and its row is repeated under every H, so each table row is complete.
/// </summary>
public sealed class EvalRunner(LlamaModel model, TextTokenizer tokenizer, ICompressor? retainingHeads = null)
{
    /// <summary>Starts the report note of a run stopped by <see cref="EvalOptions.TimeLimit"/>.</summary>
    public const string TimeLimitNotePrefix = "stopped by the time limit of ";

    /// <summary>Starts the report note of a sample dropped because a run of it failed.</summary>
    public const string ErrorNotePrefix = "dropped after an error: ";

    /// <summary>Failed samples after which a run stops (an error that repeats is not a passing fault).</summary>
    public const int MaxFailedSamples = 3;

    /// <summary>Tokens generated beyond the answer's own (room for a newline or EOS).</summary>
    public const int ExtraNewTokens = 2;

    private readonly SampleGenerator _generator = new(tokenizer);
    private readonly long[] _stopIds = tokenizer.StopIds(model.Config).Select(i => (long)i).ToArray();

    public SampleGenerator Generator => _generator;

    /// <summary>Checks the options against the model before any work: modes need their compressor, prompts must fit.</summary>
    public void Validate(EvalOptions o)
    {
        if (retainingHeads is null && o.Modes.Where(m => m.NeedsRetainingHeads()).Select(m => m.Name()).FirstOrDefault() is { } needy)
            throw new ArgumentException($"mode {needy} needs trained retaining heads (--retaining-heads FILE).");
        if (o.Modes.Any(m => m.IsCritiPrefill())) o.CritiPrefill.Validate();
        if (o.Modes.Any(m => m.IsShadowKv())) o.ShadowKv.Validate();
        if (o.Samples < 1) throw new ArgumentException($"samples ({o.Samples}) must be at least 1.");
        if (o.AnchorDivisor < 1) throw new ArgumentException($"anchor divisor ({o.AnchorDivisor}) must be at least 1 (l_a = l_b / divisor).");
        if (o.ShardCount < 1 || o.ShardIndex < 0 || o.ShardIndex >= o.ShardCount)
            throw new ArgumentException($"shard {o.ShardIndex}/{o.ShardCount}: the index must lie in 0..{Math.Max(0, o.ShardCount - 1)}.");
        int limit = model.Config.MaxPositionEmbeddings;
        foreach (int n in o.Lengths)
            if (n + 64 > limit)
                throw new ArgumentException($"length {n} (+ up to 64 answer tokens) exceeds the model's max_position_embeddings ({limit}).");
        foreach (int h in o.Hosts)
            if (h < 1) throw new ArgumentException($"hosts ({h}) must be at least 1.");
    }

    /// <param name="failed">Called with each run's exception when its sample is dropped (the report keeps one line of it).</param>
    public EvalReport Run(EvalOptions o, string modelName, string hardware, string command, Action<EvalProgress>? progress = null,
        Action<Exception>? failed = null)
    {
        Validate(o);
        var report = new EvalReport(modelName, hardware, command, DateTimeOffset.UtcNow, [], [], []);
        foreach (var ablation in o.Modes.Where(m => m is EvalMode.ApbNoAnchor or EvalMode.ApbPlainAnchor))
            report.Notes.Add(retainingHeads is null
                ? $"{ablation.Name()} selects with random scores (no retaining heads given; the query-aware compressor needs the question in the anchor)."
                : $"{ablation.Name()} selects with the retaining heads.");
        if (o.Modes.Contains(EvalMode.ApbPlainAnchor))
            report.Notes.Add("apb-plain-anchor: the anchor is the plain document start, without the embedded question.");
        if (o.Modes.Any(m => m.IsSingleHost()) && o.Hosts.Any(h => h > 1))
            report.Notes.Add("dense runs on one host; its result is repeated under every H.");
        if (o.Modes.Any(m => m.IsCritiPrefill()))
            report.Notes.Add($"dense-criti and apb-criti: {o.CritiPrefill} (apb-criti: retaining heads; each host prunes only its local causal part).");
        if (o.Modes.Any(m => m.IsShadowKv()))
            report.Notes.Add($"dense-shadowkv and apb-shadowkv: {o.ShadowKv} (apb-shadowkv: retaining heads; each host converts its own shard after prefill).");
        report.Notes.Add($"APB: l_a = l_b/{o.AnchorDivisor} (the paper's is l_b/4), l_p = l_b/8; the question is embedded after the header; " +
            $"apb and star blocks: {(o.Split == BlockSplit.Equal ? "equal (the paper's layout)" : "cost-balanced (the served default)")}.");
        if (o.ShardCount > 1)
            report.Notes.Add($"{EvalReport.ShardNotePrefix}{o.ShardIndex}/{o.ShardCount}: samples i with i mod {o.ShardCount} = {o.ShardIndex} only; join the shards with `apb eval merge`.");

        bool Mine(int i) => i % o.ShardCount == o.ShardIndex;
        int samples = Enumerable.Range(0, o.Samples).Count(Mine);
        int total = o.Tasks.Count * o.Lengths.Count * samples * o.Hosts.Count * o.Modes.Count, done = 0, samplesDone = 0;
        var failures = new List<Exception>();
        var clock = Stopwatch.StartNew();
        // Sample-major: sample i runs through every task, length, H and mode before sample i + 1 starts, so a run
        // stopped by the time limit has the same samples in every cell.
        for (int i = 0; i < o.Samples; i++)
        {
            if (!Mine(i)) continue;
            // At least one sample (never an empty report); then none that would, at the pace so far, end past the limit.
            if (o.TimeLimit is { } limit && samplesDone > 0 && clock.Elapsed + clock.Elapsed / samplesDone > limit)
            {
                report.Notes.Add($"{TimeLimitNotePrefix}{limit.TotalSeconds:0} s: {samplesDone} of {samples} samples a cell were run.");
                break;
            }
            // A run that throws (e.g. cuDNN's intermittent kernel failure) drops its whole sample, so every cell still
            // holds the same samples, and the evaluation goes on; the report names the sample, the run and the error.
            int rowsBefore = report.Rows.Count;
            string current = "";
            try
            {
                foreach (var task in o.Tasks)
                    foreach (int length in o.Lengths)
                    {
                        // Depths sweep the document evenly over the samples (needle-in-a-haystack style).
                        var sample = _generator.Generate(task, length, o.Seed + i, depth: (i + 0.5) / o.Samples);
                        var singleHost = new Dictionary<EvalMode, EvalRow>();
                        foreach (int hosts in o.Hosts)
                            foreach (var mode in o.Modes)
                            {
                                current = $"{task.Name()} {length} H={hosts} {mode.Name()}";
                                var row = singleHost.TryGetValue(mode, out var once)
                                    ? once with { Hosts = hosts }
                                    : RunOne(sample, mode, hosts, i, o.Deadline, o.AnchorDivisor, o.Split, o.CritiPrefill, o.ShadowKv);
                                if (mode.IsSingleHost()) singleHost[mode] = row;
                                report.Rows.Add(row);
                                var cell = report.Rows.Where(r => r.Task == row.Task && r.Length == length && r.Hosts == hosts && r.Mode == row.Mode).ToList();
                                progress?.Invoke(new EvalProgress(++done, total, $"{row.Task} {length} H={hosts} {row.Mode}",
                                    100.0 * cell.Count(r => r.Correct) / cell.Count));
                            }
                    }
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                report.Rows.RemoveRange(rowsBefore, report.Rows.Count - rowsBefore);
                failures.Add(e);
                report.Notes.Add($"{ErrorNotePrefix}sample {i}, in {current}: {Headline(e)}");
                failed?.Invoke(e);
                if (failures.Count < MaxFailedSamples) continue;
                report.Notes.Add($"stopped after {failures.Count} failed samples: {samplesDone} of {samples} samples a cell were run.");
                break;
            }
            samplesDone++;
        }
        // Nothing succeeded: the error itself ends the run, rather than an empty report.
        if (samplesDone == 0 && failures.Count > 0)
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(failures[^1]).Throw();
        if (ApbCluster.Model.Attention.FusedAttention.CudnnDisabledBecause is { } why)
            report.Notes.Add($"cuDNN's fused attention failed once ({why}); the flash kernel served the rest of the run.");
        report.Cells.AddRange(EvalReport.Aggregate(report.Rows));
        return report;
    }

    /// <summary>The line of an error that says what went wrong: a TorchScript error's `RuntimeError:` line, else the
    /// first line that is not part of libtorch's C++ stack (`Exception raised from ...`, `frame #N: ...`).</summary>
    public static string Headline(Exception e)
    {
        var lines = WithoutNativeStack(e.Message).Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0).ToList();
        return lines.FirstOrDefault(l => l.StartsWith("RuntimeError:", StringComparison.Ordinal)) ?? lines.FirstOrDefault() ?? e.GetType().Name;
    }

    /// <summary>An error message less libtorch's C++ stack (`Exception raised from ...`, `frame #N: ...` lines).</summary>
    public static string WithoutNativeStack(string message) => string.Join('\n', message.Split('\n').Where(l =>
        !l.TrimStart().StartsWith("frame #", StringComparison.Ordinal) && !l.TrimStart().StartsWith("Exception raised from", StringComparison.Ordinal)));

    /// <summary>One sample through one mode on <paramref name="hosts"/> virtual hosts.</summary>
    public EvalRow RunOne(EvalSample s, EvalMode mode, int hosts, int sampleIndex = 0, TimeSpan? deadline = null,
        int anchorDivisor = ApbPlan.DefaultAnchorDivisor, BlockSplit? split = null, CritiPrefillOptions? critiPrefill = null,
        ShadowKvOptions? shadowKv = null) =>
        Execute(s, mode, hosts, sampleIndex, deadline, timing: false, anchorDivisor, split, critiPrefill, shadowKv).Row;

    /// <summary>As <see cref="RunOne"/>, also with the plan and where the time went (per-phase prefill timing adds
    /// device syncs, so the evaluation itself does not use it).</summary>
    public EvalRun RunTimed(EvalSample s, EvalMode mode, int hosts, TimeSpan? deadline = null,
        int anchorDivisor = ApbPlan.DefaultAnchorDivisor, BlockSplit? split = null, CritiPrefillOptions? critiPrefill = null,
        ShadowKvOptions? shadowKv = null) =>
        Execute(s, mode, hosts, 0, deadline, timing: true, anchorDivisor, split, critiPrefill, shadowKv);

    /// <param name="critiPrefill">The *-criti modes' parameters (null: CritiPrefill's defaults); other modes ignore them.</param>
    /// <param name="shadowKv">The *-shadowkv modes' parameters (null: ShadowKV's defaults); other modes ignore them.</param>
    private EvalRun Execute(EvalSample s, EvalMode mode, int hosts, int sampleIndex, TimeSpan? deadline, bool timing, int anchorDivisor,
        BlockSplit? split, CritiPrefillOptions? critiPrefill, ShadowKvOptions? shadowKv)
    {
        var (plan, strategy) = Setup(s, mode, hosts, anchorDivisor, split);
        int maxNew = tokenizer.Encode(" " + s.AnswerText, addBos: false).Count + ExtraNewTokens;
        var request = new PrefillRequest(s.DocumentIds, s.QuestionIds) { CritiPrefill = mode.IsCritiPrefill() ? critiPrefill ?? new() : null };
        var traffic = new CollectiveTraffic();
        var clock = Stopwatch.StartNew();
        var results = ParallelRun.InProcess(model, plan, strategy, request,
            new Phase2Options
            {
                MaxNewTokens = maxNew, StopIds = _stopIds, Timing = timing,
                KvStore = KvStoreFactory.For(mode.IsShadowKv() ? shadowKv ?? new() : null),
            }, deadline ?? TimeSpan.FromMinutes(10), traffic);
        double seconds = clock.Elapsed.TotalSeconds;
        foreach (var (shard, _) in results) shard.Dispose();
        var last = results[^1].Result;
        var ids = last.Tokens.Where(t => !_stopIds.Contains(t)).Select(t => (int)t).ToArray();
        string prediction = tokenizer.Decode(ids, skipSpecial: true);
        var row = new EvalRow(s.Task.Name(), s.TargetTokens, s.TotalTokens, hosts, mode.Name(), sampleIndex, s.Seed, s.Depth,
            s.Answers, prediction, AnswerScorer.IsCorrect(s, prediction), seconds, plan.Blocks.Select(b => b.Length).ToArray());
        double decode = last.QuestionTime.TotalSeconds + last.StepTimes.Sum(t => t.TotalSeconds);
        // The slowest host's prefill phases: the one everybody waits for.
        var phases = results.Select(r => r.Shard.Timings.Totals).MaxBy(t => t.Values.Sum(v => v.TotalSeconds))
            ?.ToDictionary(kv => kv.Key, kv => kv.Value.TotalSeconds) ?? [];
        var (prefillBytes, decodeBytes) = traffic.SentByPhase();
        return new EvalRun(row, plan, seconds - decode, decode, phases, prefillBytes, decodeBytes);
    }

    /// <summary>The plan and strategy of a mode: ablations zero l_a or l_p; one host has nothing to pass.</summary>
    private (ApbPlan Plan, PrefillStrategy Strategy) Setup(EvalSample s, EvalMode mode, int hosts, int anchorDivisor, BlockSplit? split)
    {
        var parallel = mode switch { EvalMode.Dense or EvalMode.DenseCriti or EvalMode.DenseShadowKv => ParallelMode.Dense, EvalMode.Star => ParallelMode.Star, _ => ParallelMode.Apb };
        int h = mode.IsSingleHost() ? 1 : hosts;
        var choices = new PlanChoices
        {
            AnchorLength = mode == EvalMode.ApbNoAnchor ? 0 : null,
            AnchorDivisor = anchorDivisor,
            EmbedQuestion = mode == EvalMode.ApbPlainAnchor ? false : null,
            PassingLength = mode == EvalMode.ApbNoPassing ? 0 : null,
            Split = split,
        };
        var plan = ServingPlan.Create(parallel, h, s.DocumentIds.Length, s.QuestionIds.Length, s.TemplateOffset, choices, model.Config);
        ICompressor? compressor = mode switch
        {
            EvalMode.ApbQuery => new QueryAwareCompressor(),
            EvalMode.ApbRetaining or EvalMode.ApbCriti or EvalMode.ApbShadowKv => retainingHeads,
            EvalMode.ApbRandom => new RandomCompressor(s.Seed),
            EvalMode.ApbNoAnchor or EvalMode.ApbPlainAnchor => retainingHeads ?? new RandomCompressor(s.Seed),
            _ => null,
        };
        return (plan, ParallelRun.For(parallel, compressor));
    }
}
