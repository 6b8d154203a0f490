using System.CommandLine;
using ApbCluster.Evaluation.Analysis;
using ApbCluster.Evaluation.Tasks;
using ApbCluster.Parallel.Compression;

namespace ApbCluster.Cli.Commands;

/// <summary>`apb eval selection` (hidden, a diagnostic): what each compressor passes compared with where the needle is
/// and where the dense question looks (<see cref="SelectionProbe"/>; docs/evaluation.md).</summary>
internal static class EvalSelectionCommand
{
    public static Command Create()
    {
        var m = new ModelOptions();
        var tasks = new Option<string>("--tasks") { Description = "comma-separated task names", DefaultValueFactory = _ => string.Join(",", EvalTasks.All.Select(t => t.Name())) };
        var length = new Option<string>("--length") { Description = "prompt length in tokens, e.g. 8k", DefaultValueFactory = _ => "8k" };
        var hosts = new Option<int>("--hosts") { Description = "virtual hosts (2 or more)", DefaultValueFactory = _ => 4 };
        var samples = new Option<int>("--samples") { Description = "samples per task (the seeds and depths `apb eval` uses)", DefaultValueFactory = _ => 4 };
        var seed = new Option<long>("--seed") { Description = "generator seed", DefaultValueFactory = _ => 0 };
        var runWith = new Option<string>("--run-with") { Description = "the compressor APB runs with: query, softmax or retaining", DefaultValueFactory = _ => "query" };
        var output = new Option<string?>("--out", "-o") { Description = "Markdown file to write (also printed)" };
        var cmd = new Command("selection", "Diagnostic: needle tokens each compressor passes, on the same APB inputs.")
            { tasks, length, hosts, samples, seed, runWith, output };
        cmd.Hidden = true;
        m.AddTo(cmd);
        cmd.SetAction(pr => CliRun.Guard(() =>
        {
            string run = pr.GetValue(runWith)!;
            if (run is not ("query" or "softmax" or "retaining")) throw new CliUsageException($"--run-with {run}: expected query, softmax or retaining.");
            if (pr.GetValue(hosts) < 2) throw new CliUsageException($"--hosts {pr.GetValue(hosts)}: APB selects only with 2 or more hosts.");
            if (pr.GetValue(samples) < 1) throw new CliUsageException($"--samples {pr.GetValue(samples)}: must be at least 1.");
            var options = new ProbeOptions
            {
                Tasks = Usage("--tasks", () => pr.GetValue(tasks)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(EvalTasks.Parse).Distinct().ToArray()),
                Length = BenchCommand.ParseLengths(pr.GetValue(length)!, "--length").Single(),
                Hosts = pr.GetValue(hosts),
                Samples = pr.GetValue(samples),
                Seed = pr.GetValue(seed),
                RunWith = run,
            };
            string modelDir = pr.GetValue(m.Model)!;
            using var loaded = m.Load(pr);
            var model = loaded.Model;
            var headsPath = RetainingHeadsFile.Beside(modelDir);
            var heads = headsPath is null ? null : RetainingHeadsFile.Load(headsPath, model.Config, model.Device, model.Dtype);
            var report = new SelectionProbe(model, loaded.Folder.Tokenizer, heads).Run(options, Console.Error.WriteLine);
            string md = report.Markdown("apb " + string.Join(' ', Environment.GetCommandLineArgs().Skip(1)));
            Console.WriteLine(md);
            if (pr.GetValue(output) is { } path) File.WriteAllText(path, md);
            return CliRun.Ok;
        }));
        return cmd;
    }

    private static T Usage<T>(string option, Func<T> parse)
    {
        try { return parse(); }
        catch (ArgumentException e) { throw new CliUsageException($"{option}: {e.Message}"); }
    }
}
