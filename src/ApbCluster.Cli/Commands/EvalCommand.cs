using System.CommandLine;
using ApbCluster.Evaluation;
using ApbCluster.Evaluation.Reporting;
using ApbCluster.Evaluation.Running;
using ApbCluster.Evaluation.Tasks;
using ApbCluster.Parallel.Compression;
using TorchSharp;
using static TorchSharp.torch;

namespace ApbCluster.Cli.Commands;

/// <summary>`apb eval`: synthetic long-context tasks through dense / star / APB variants on H virtual hosts;
/// writes eval.json, eval.md and eval.png (docs/evaluation.md).</summary>
internal static class EvalCommand
{
    public static Command Create()
    {
        var m = new ModelOptions();
        var criti = new PrefillAttentionCliOptions(withSwitch: false);
        var kv = new KvStoreCliOptions(withSwitch: false);
        var tasks = new Option<string>("--tasks") { Description = "comma-separated: " + string.Join(", ", EvalTasks.All.Select(t => t.Name())), DefaultValueFactory = _ => string.Join(",", EvalTasks.All.Select(t => t.Name())) };
        var lengths = new Option<string>("--lengths") { Description = "prompt lengths in tokens, e.g. 4k,8k", DefaultValueFactory = _ => "4k,8k" };
        var hosts = new Option<string>("--hosts") { Description = "virtual host counts, e.g. 2,4,8", DefaultValueFactory = _ => "2,4,8" };
        var modes = new Option<string?>("--modes") { Description = "comma-separated: " + string.Join(", ", EvalModes.All.Select(x => x.Name())) + " (default: all but the *-criti and *-shadowkv modes; apb-retaining needs trained heads, from --retaining-heads or beside the model)" };
        var samples = new Option<int>("--samples") { Description = "samples per task x length (every mode and H sees the same ones)", DefaultValueFactory = _ => 10 };
        var seed = new Option<long>("--seed") { Description = "generator seed", DefaultValueFactory = _ => 0 };
        var heads = new Option<string?>("--retaining-heads") { Description = "trained retaining heads (apb train retaining-heads); optional, default: retaining_heads.safetensors beside the model" };
        var output = new Option<string>("--out", "-o") { Description = "folder for eval.json, eval.md, eval.png", Required = true };
        var shard = new Option<string?>("--shard") { Description = "I/N: run only samples i with i mod N = I (same seeds as the whole run), to split one evaluation over N processes; join them with `apb eval merge`" };
        var anchorDivisor = new Option<int>("--anchor-divisor") { Description = $"APB's anchor length l_a = l_b / N (default {ApbCluster.Parallel.Plan.ApbPlan.DefaultAnchorDivisor}; the paper's 4)", DefaultValueFactory = _ => ApbCluster.Parallel.Plan.ApbPlan.DefaultAnchorDivisor };
        var split = new Option<string?>("--split") { Description = "apb and star blocks: balanced (about equal prefill cost per host; the default) or equal (the paper's layout)" };
        var timeLimit = new Option<double?>("--time-limit") { Description = "seconds the run should end by: no sample starts that would end later at the pace so far (the first always runs); the report holds the samples done, the same ones in every cell, and says so" };
        var cmd = new Command("eval", "Accuracy of dense, star and APB variants on synthetic long-context tasks.")
            { tasks, lengths, hosts, modes, samples, seed, heads, output, shard, timeLimit, anchorDivisor, split };
        cmd.Subcommands.Add(Merge());
        cmd.Subcommands.Add(EvalSelectionCommand.Create());
        m.AddTo(cmd);
        criti.AddTo(cmd);
        kv.AddTo(cmd);
        cmd.SetAction(pr => CliRun.Guard(() =>
        {
            // Trained heads beside the weights are used unless --retaining-heads names others.
            string? headsPath = pr.GetValue(heads) ?? RetainingHeadsFile.Beside(pr.GetValue(m.Model)!);
            var options = new EvalOptions
            {
                Tasks = Usage("--tasks", () => Split(pr.GetValue(tasks)!).Select(EvalTasks.Parse).Distinct().ToArray()),
                Lengths = BenchCommand.ParseLengths(pr.GetValue(lengths)!, "--lengths"),
                Hosts = Usage("--hosts", () => Split(pr.GetValue(hosts)!).Select(ParseHosts).Distinct().ToArray()),
                Modes = Usage("--modes", () => pr.GetValue(modes) is { } list
                    ? Split(list).Select(EvalModes.Parse).Distinct().ToArray()
                    : EvalModes.All.Where(x => !x.IsCritiPrefill() && !x.IsShadowKv() && (x != EvalMode.ApbRetaining || headsPath != null)).ToArray()),
                CritiPrefill = criti.Parameters(pr),
                ShadowKv = kv.ShadowKv(pr),
                Samples = pr.GetValue(samples),
                Seed = pr.GetValue(seed),
                AnchorDivisor = pr.GetValue(anchorDivisor) switch
                {
                    >= 1 and var d => d,
                    var d => throw new CliUsageException($"--anchor-divisor {d}: must be at least 1 (l_a = l_b / N)."),
                },
                Split = pr.GetValue(split) is { } splitText ? BenchCommand.ParseSplit(splitText) : null,
                TimeLimit = pr.GetValue(timeLimit) is { } seconds
                    ? seconds > 0 ? TimeSpan.FromSeconds(seconds) : throw new CliUsageException($"--time-limit {seconds}: must be a positive number of seconds.")
                    : null,
            };
            if (pr.GetValue(shard) is { } shardText)
            {
                var (index, count) = Usage("--shard", () => ParseShard(shardText));
                options = options with { ShardIndex = index, ShardCount = count };
            }
            if (headsPath is null && options.Modes.Where(x => x.NeedsRetainingHeads()).Select(x => x.Name()).FirstOrDefault() is { } needy)
                throw new CliUsageException($"--modes {needy} needs --retaining-heads FILE or {RetainingHeadsFile.DefaultFileName} in the model folder (train them with `apb train retaining-heads`).");
            if (headsPath is not null && !File.Exists(headsPath))
                throw new CliUsageException($"--retaining-heads {headsPath}: file not found.");

            using var loaded = m.Load(pr);
            var model = loaded.Model;
            RetainingHeadCompressor? compressor = headsPath is null ? null : RetainingHeadsFile.Load(headsPath, model.Config, model.Device, model.Dtype);
            var runner = new EvalRunner(model, loaded.Folder.Tokenizer, compressor);
            Usage("--lengths", () => { runner.Validate(options); return 0; });
            string hardware = model.Device.type == DeviceType.CUDA ? $"CUDA GPU ({model.Dtype})" : $"CPU ({Environment.ProcessorCount} cores, {model.Dtype})";
            var command = "apb " + string.Join(' ', Environment.GetCommandLineArgs().Skip(1));
            // A dropped sample's whole error goes to stderr (the report keeps its headline), without libtorch's C++ frames.
            var report = runner.Run(options, Path.GetFileName(Path.TrimEndingDirectorySeparator(loaded.Folder.Directory)), hardware, command, ProgressLine,
                e => Console.Error.WriteLine($"\nerror (its sample is dropped): {e.GetType().Name}: {EvalRunner.WithoutNativeStack(e.Message)}" +
                    (e.InnerException is { } inner ? $"\n  inner: {inner.GetType().Name}: {EvalRunner.Headline(inner)}" : "")));
            Console.Error.WriteLine();
            var files = EvalReportWriter.Write(report, pr.GetValue(output)!);
            Console.WriteLine(EvalReportWriter.Markdown(report));
            Console.Error.WriteLine("wrote " + string.Join(", ", files));
            foreach (var dropped in report.Notes.Where(n => n.StartsWith(EvalRunner.ErrorNotePrefix, StringComparison.Ordinal)))
                Console.Error.WriteLine("warning: " + dropped);
            return CliRun.Ok;
        }));
        return cmd;
    }

    /// <summary>`apb eval merge --out DIR SHARD_DIR...`: one report (eval.json, eval.md, eval.png) from shard runs.</summary>
    private static Command Merge()
    {
        var inputs = new Argument<string[]>("shards") { Description = "folders written by `apb eval --shard I/N --out DIR`", Arity = ArgumentArity.OneOrMore };
        var output = new Option<string>("--out", "-o") { Description = "folder for the merged eval.json, eval.md, eval.png", Required = true };
        var cmd = new Command("merge", "Join the reports of `apb eval --shard I/N` runs into one.") { inputs, output };
        cmd.SetAction(pr => CliRun.Guard(() =>
        {
            var reports = pr.GetValue(inputs)!.Select(EvalReportWriter.Read).ToList();
            var merged = Usage("shards", () => EvalReport.Merge(reports));
            var files = EvalReportWriter.Write(merged, pr.GetValue(output)!);
            Console.WriteLine(EvalReportWriter.Markdown(merged));
            Console.Error.WriteLine($"merged {reports.Count} reports ({merged.Rows.Count} runs); wrote " + string.Join(", ", files));
            return CliRun.Ok;
        }));
        return cmd;
    }

    private static (int Index, int Count) ParseShard(string text)
    {
        var parts = text.Split('/');
        if (parts.Length != 2 || !int.TryParse(parts[0], out int index) || !int.TryParse(parts[1], out int count) || count < 1 || index < 0 || index >= count)
            throw new ArgumentException($"'{text}' is not I/N with 0 <= I < N.");
        return (index, count);
    }

    /// <summary>A progress bar on stderr, redrawn in place (one line per run when stderr is a file).</summary>
    private static void ProgressLine(EvalProgress p)
    {
        const int width = 24;
        int filled = (int)((long)p.Done * width / p.Total);
        string line = $"[{new string('#', filled)}{new string('.', width - filled)}] {p.Done}/{p.Total}  {p.Cell}  ({p.CellAccuracy:F0}% so far)";
        if (Console.IsErrorRedirected) Console.Error.WriteLine(line);
        else Console.Error.Write("\r" + line.PadRight(Math.Max(line.Length, 100)));
    }

    private static string[] Split(string text) => text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    private static int ParseHosts(string s) =>
        int.TryParse(s, out int h) && h >= 1 ? h : throw new ArgumentException($"'{s}' is not a host count (1 or more).");

    /// <summary>Turns a parse/validation error of an option into a usage error (exit code 2) naming the option.</summary>
    private static T Usage<T>(string option, Func<T> parse)
    {
        try { return parse(); }
        catch (ArgumentException e) { throw new CliUsageException($"{option}: {e.Message}"); }
    }
}
