using ApbCluster.Evaluation.Running;
using ApbCluster.Evaluation.Tasks;
using ApbCluster.Model.Layers;
using ApbCluster.Model.Loading;
using ApbCluster.NativeInterop;
using ApbCluster.Parallel.Compression;
using ApbCluster.Parallel.Strategies;
using TorchSharp;
using static TorchSharp.torch;

namespace ApbCluster.Cli.Commands;

/// <summary>
/// `apb demo`: APB answering questions about a long document, with the demo model this repository trains
/// (shipped beside the executable in demo-model/). Two tasks of the evaluation suite, a single needle and a
/// variable chain spread over every host's block, each through dense attention on one host and star and
/// APB (query-aware, and retaining heads when the model has them) on H virtual hosts: the question, the
/// expected answer, each mode's answer, whether it is right, and where the time went.
/// </summary>
internal static class RetrievalDemo
{
    /// <summary>The bundled model's folder, copied next to apb.dll by the build.</summary>
    public static string BundledModel => Path.Combine(AppContext.BaseDirectory, "demo-model");

    // Mid-document (inside host 1 of 4): the needle is neither in the anchor nor in the last host's own block.
    private const double NeedleDepth = 0.35;

    public static int Run(string modelDir, int tokens, int hosts, long seed, string deviceName)
    {
        if (!File.Exists(Path.Combine(modelDir, "config.json")))
            throw new CliUsageException(modelDir == BundledModel
                ? $"the bundled demo model is missing ({modelDir}): rebuild src/ApbCluster.Cli, pass --model DIR, or run `apb demo --exactness`."
                : $"--model {modelDir}: no config.json there.");
        if (hosts < 2) throw new CliUsageException($"--hosts {hosts}: APB needs at least 2 hosts.");
        var device = ModelOptions.ParseDevice(deviceName == "auto" ? (TorchRuntime.TryCuda() ? "cuda" : "cpu") : deviceName);
        using var loaded = ModelOptions.Load(modelDir, device, "auto");
        var (folder, model, config, dtype) = (loaded.Folder, loaded.Model, loaded.Folder.Config, loaded.Model.Dtype);
        if (tokens < 256 * hosts || tokens + 64 > config.MaxPositionEmbeddings)
            throw new CliUsageException($"--tokens {tokens}: must be between {256 * hosts} ({hosts} hosts) and {config.MaxPositionEmbeddings - 64} (the model's max_position_embeddings less room for the answer).");
        var headsPath = RetainingHeadsFile.Beside(modelDir);
        var heads = headsPath is null ? null : RetainingHeadsFile.Load(headsPath, config, device, dtype);
        var runner = new EvalRunner(model, folder.Tokenizer, heads);

        string where = device.type == DeviceType.CUDA ? $"{device} ({dtype})" : $"the CPU ({Environment.ProcessorCount} cores, {dtype})";
        Console.WriteLine($"ApbCluster demo: {Path.GetFileName(Path.TrimEndingDirectorySeparator(modelDir))}, a {config.NumLayers}-layer Llama " +
            $"({Parameters(model) / 1e6:F1} M parameters) trained by this repository (docs/training.md), on {hosts} virtual hosts, {where}.");

        var modes = new List<(string Name, EvalMode Mode)> { ("dense", EvalMode.Dense), ("star", EvalMode.Star), ("apb query-aware", EvalMode.ApbQuery) };
        if (heads is not null) modes.Add(("apb retaining heads", EvalMode.ApbRetaining));
        var tasks = new (EvalTask Task, double? Depth, string Story)[]
        {
            (EvalTask.SingleNeedle, NeedleDepth, $"the document ({tokens:N0} tokens) hides one key and its number, {NeedleDepth:P0} of the way in."),
            (EvalTask.VariableTracking, null, $"the document ({tokens:N0} tokens) holds a chain of {TaskRecipes.ChainHops} assignments, one in each quarter (so on every host), and a distractor chain."),
        };
        var clock = System.Diagnostics.Stopwatch.StartNew();
        Console.WriteLine($"APB splits the document into {hosts} blocks, one per host. Every host also gets an anchor (the document's first l_a tokens, "
            + "with the question embedded), keeps the l_p tokens of its block that its compressor scores highest, and passes those to every "
            + "later host: that is all the hosts exchange during prefill. Star passes nothing; dense runs on one host.");
        var score = new Dictionary<string, int>();
        for (int t = 0; t < tasks.Length; t++)
        {
            var (task, depth, story) = tasks[t];
            var sample = runner.Generator.Generate(task, tokens, seed + t, depth);
            Console.WriteLine();
            Console.WriteLine($"{t + 1}. {task.Name()}: {story}");
            Console.WriteLine($"   Question: {QuestionText(sample.Question)}");
            Console.WriteLine($"   Expected: {sample.AnswerText}");
            Console.WriteLine();
            Console.WriteLine($"   {"mode",-20} {"hosts",5} {"l_a",5} {"l_p",5} {"prefill ms",11} {"decode ms",10} {"sent",9}  {"right",-5}  answer");
            foreach (var (name, mode) in modes)
            {
                var run = runner.RunTimed(sample, mode, hosts);
                var row = run.Row;
                score[name] = score.GetValueOrDefault(name) + (row.Correct ? 1 : 0);
                bool single = mode.IsSingleHost();
                Console.WriteLine($"   {name,-20} {run.Plan.Hosts,5} {(single ? "-" : run.Plan.AnchorLength.ToString()),5} {(single ? "-" : run.Plan.PassingLength.ToString()),5} " +
                    $"{run.PrefillSeconds * 1000,11:N0} {run.DecodeSeconds * 1000,10:N0} {ByteSize.Format(run.PrefillBytes + run.DecodeBytes),9}  " +
                    $"{Found(sample.Answers, row.Correct, row.Prediction),-5}  {Quote(row.Prediction)}");
                if (mode == EvalMode.ApbQuery)
                {
                    Console.WriteLine($"   {"",-20} prefill of the slowest host: {string.Join(", ", run.PrefillPhases.Select(p => $"{p.Key} {p.Value * 1000:N0} ms"))}");
                    Console.WriteLine($"   {"",-20} the hosts sent each other {ByteSize.Format(run.PrefillBytes)} in prefill (each block's {run.Plan.PassingLength} passed " +
                        $"tokens, keys and values of every layer) and {ByteSize.Format(run.DecodeBytes)} in decode (partial attention outputs to merge)");
                }
            }
        }

        Console.WriteLine();
        Console.WriteLine("Right answers: " + string.Join(", ", score.Select(s => $"{s.Key} {s.Value}/{tasks.Length}")) + $". Total {clock.Elapsed.TotalSeconds:F1} s.");
        Console.WriteLine("sent: bytes all hosts sent each other. Star and APB differ from dense only in prefill: a host computes its block seeing the anchor " +
            "and its own block (star), plus the l_p tokens passed from each earlier block (APB), not every earlier token; the question then reads every host's keys and values exactly.");
        Console.WriteLine(device.type == DeviceType.CUDA
            ? "The virtual hosts share one GPU here: times show the work of each mode; docs/benchmarks has multi-GPU speed-ups."
            : "The virtual hosts share the CPU's cores: times show the work of each mode, not a multi-GPU speed-up (docs/benchmarks has those).");
        Console.WriteLine("More: `apb eval` measures accuracy over many samples (docs/evaluation.md); `apb demo --exactness` checks the exact modes.");
        return CliRun.Ok;
    }

    /// <summary>"yes", "no", or for a many-part answer how many parts were found ("2/4"), so a half-followed chain shows.</summary>
    private static string Found(IReadOnlyList<string> answers, bool correct, string prediction)
    {
        if (correct) return "yes";
        if (answers.Count < 2) return "no";
        var found = answers.Count(a => prediction.Contains(a, StringComparison.Ordinal));
        return found == 0 ? "no" : $"{found}/{answers.Count}";
    }

    private static long Parameters(LlamaModel model) => model.parameters().Sum(p => p.numel());

    /// <summary>The question itself, without the prompt's "Question:" / "Answer:" frame.</summary>
    private static string QuestionText(string prompt)
    {
        var text = prompt.Trim();
        if (text.StartsWith("Question:", StringComparison.Ordinal)) text = text["Question:".Length..];
        if (text.EndsWith("Answer:", StringComparison.Ordinal)) text = text[..^"Answer:".Length];
        return text.Trim().Replace("\n", " ");
    }

    private static string Quote(string prediction)
    {
        var text = prediction.Trim().Replace("\n", " ");
        return text.Length > 60 ? $"\"{text[..57]}...\"" : $"\"{text}\"";
    }
}
