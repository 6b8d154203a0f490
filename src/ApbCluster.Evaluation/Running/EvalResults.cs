namespace ApbCluster.Evaluation.Running;

/// <summary>One sample run through one mode on H hosts; <c>Blocks</c>: the plan's block lengths (host order).</summary>
public sealed record EvalRow(string Task, int Length, int Tokens, int Hosts, string Mode, int Sample, long Seed, double Depth,
    IReadOnlyList<string> Expected, string Prediction, bool Correct, double Seconds, IReadOnlyList<int>? Blocks = null);

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

    /// <summary>Prefix of the note a shard's report carries (<see cref="EvalOptions.ShardCount"/> &gt; 1).</summary>
    public const string ShardNotePrefix = "shard ";

    /// <summary>
    /// One report from the shards of one evaluation (`apb eval --shard I/N`, run in parallel processes): their rows
    /// together, the cells aggregated again. Throws when the shards are of different models or overlap (a sample
    /// run twice in one cell), naming the run.
    /// </summary>
    public static EvalReport Merge(IReadOnlyList<EvalReport> shards)
    {
        if (shards.Count == 0) throw new ArgumentException("nothing to merge.");
        var models = shards.Select(s => s.Model).Distinct().ToList();
        if (models.Count > 1) throw new ArgumentException($"the reports are of different models: {string.Join(", ", models)}.");
        var rows = shards.SelectMany(s => s.Rows).ToList();
        var twice = rows.GroupBy(r => (r.Task, r.Length, r.Hosts, r.Mode, r.Sample)).FirstOrDefault(g => g.Count() > 1);
        if (twice is not null)
            throw new ArgumentException($"sample {twice.Key.Sample} of {twice.Key.Task} {twice.Key.Length} H={twice.Key.Hosts} {twice.Key.Mode} is in more than one report (overlapping shards?).");
        // The whole run's order: every shard ran the same loops (sample, task, length, hosts, mode), so the order of first
        // appearance gives the tasks' and modes' order (and with it the table's columns).
        var taskRank = Ranks(rows.Select(r => r.Task));
        var modeRank = Ranks(rows.Select(r => r.Mode));
        var hostsRank = Ranks(rows.Select(r => r.Hosts));
        var lengthRank = Ranks(rows.Select(r => r.Length));
        rows = rows.OrderBy(r => taskRank[r.Task]).ThenBy(r => lengthRank[r.Length]).ThenBy(r => r.Sample)
            .ThenBy(r => hostsRank[r.Hosts]).ThenBy(r => modeRank[r.Mode]).ToList();
        bool Stopped(string n) => n.StartsWith(EvalRunner.TimeLimitNotePrefix, StringComparison.Ordinal);
        var notes = shards.SelectMany(s => s.Notes).Where(n => !n.StartsWith(ShardNotePrefix, StringComparison.Ordinal) && !Stopped(n)).Distinct().ToList();
        notes.Add(ShardsNote(shards));
        var cells = Aggregate(rows);
        int cut = shards.Count(s => s.Notes.Any(Stopped));
        if (cut > 0)
        {
            notes.Add($"{cut} of {shards.Count} shards were {EvalRunner.TimeLimitNotePrefix}their run: cells hold {SamplesPerCell(cells)} samples.");
        }
        var first = shards.MinBy(s => s.Started)!;
        // The whole run's command: the shard's, less its --shard and --out.
        var command = System.Text.RegularExpressions.Regex.Replace(first.Command, @" (--shard|--out|-o) \S+", "");
        return new EvalReport(first.Model, first.Hardware, command, first.Started, rows, cells, notes);
    }

    /// <summary>"N", or "least to most" when the cells hold different numbers of samples.</summary>
    public static string SamplesPerCell(IReadOnlyCollection<EvalCell> cells)
    {
        int least = cells.Select(c => c.Samples).DefaultIfEmpty().Min(), most = cells.Select(c => c.Samples).DefaultIfEmpty().Max();
        return least == most ? $"{least}" : $"{least} to {most}";
    }

    /// <summary>Which shards the merge holds, from the shard notes: a shard that died without a report is named, not hidden.</summary>
    private static string ShardsNote(IReadOnlyList<EvalReport> shards)
    {
        var specs = shards.Select(s => s.Notes.Select(n => System.Text.RegularExpressions.Regex.Match(n, $@"^{ShardNotePrefix}(\d+)/(\d+):"))
            .FirstOrDefault(m => m.Success)).ToList();
        if (specs.Any(m => m is null) || specs.Select(m => m!.Groups[2].Value).Distinct().Count() != 1)
            return $"merged from {shards.Count} reports.";
        int of = int.Parse(specs[0]!.Groups[2].Value);
        var missing = Enumerable.Range(0, of).Except(specs.Select(m => int.Parse(m!.Groups[1].Value))).ToList();
        return missing.Count == 0
            ? $"merged from the {of} reports of `--shard I/{of}` runs of the command above."
            : $"merged from {shards.Count} of the {of} reports of `--shard I/{of}` runs of the command above; missing (failed runs): shard {string.Join(", ", missing)}.";
    }

    private static Dictionary<T, int> Ranks<T>(IEnumerable<T> values) where T : notnull =>
        values.Distinct().Select((v, i) => (v, i)).ToDictionary(p => p.v, p => p.i);
}

/// <summary>One timed run: its scored row, the plan it ran on, prefill and decode seconds, the slowest host's
/// prefill seconds per phase (qkv, compressor, passing, attention, mlp), and the bytes all hosts sent each other
/// in prefill and in decode.</summary>
public sealed record EvalRun(EvalRow Row, ApbCluster.Parallel.Plan.ApbPlan Plan, double PrefillSeconds, double DecodeSeconds,
    IReadOnlyDictionary<string, double> PrefillPhases, long PrefillBytes, long DecodeBytes);

/// <summary>Progress after each run: <see cref="Done"/> of <see cref="Total"/>, the cell just run and its accuracy so far.</summary>
public sealed record EvalProgress(int Done, int Total, string Cell, double CellAccuracy);
