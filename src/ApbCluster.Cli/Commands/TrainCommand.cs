using ApbCluster.Parallel.Compression;
using System.CommandLine;
using ApbCluster.Evaluation;
using ApbCluster.Training;
using ApbCluster.Training.Demo;
using static TorchSharp.torch;

namespace ApbCluster.Cli.Commands;

/// <summary>`apb train retaining-heads`: Locret retaining heads for a frozen model (docs/evaluation.md);
/// `apb train demo-model`: the small demo model that retrieves, trained from scratch (docs/training.md).</summary>
internal static class TrainCommand
{
    public static Command Create()
    {
        var train = new Command("train", "Train the runtime's learned parts (retaining heads) on a frozen model, or the demo model.");
        train.Subcommands.Add(RetainingHeads());
        train.Subcommands.Add(DemoModel());
        return train;
    }

    private static Command RetainingHeads()
    {
        var m = new ModelOptions();
        var output = new Option<string>("--out", "-o") { Description = "safetensors file for the heads (published key layout)", Required = true };
        var steps = new Option<int>("--steps") { Description = "optimiser steps (batch 1)", DefaultValueFactory = _ => 3000 };
        var lr = new Option<double>("--lr") { Description = "AdamW learning rate", DefaultValueFactory = _ => 5e-4 };
        var seqLen = new Option<string>("--seq-len") { Description = "tokens per training prompt, e.g. 4k", DefaultValueFactory = _ => "4k" };
        var seed = new Option<long>("--seed") { Description = "seed of the heads' initialisation and the training data", DefaultValueFactory = _ => 0 };
        var lossCsv = new Option<string?>("--loss-csv") { Description = "loss curve CSV (default: next to --out, *.loss.csv)" };
        var timeLimit = new Option<double?>("--time-limit") { Description = "seconds after which no further step starts (the first always runs); the heads trained so far are saved" };
        var cmd = new Command("retaining-heads", "Locret training: frozen backbone, labels = max attention score from later tokens.")
            { output, steps, lr, seqLen, seed, lossCsv, timeLimit };
        m.AddTo(cmd);
        cmd.SetAction(pr => CliRun.Guard(() =>
        {
            var options = new RetainingHeadTrainingOptions
            {
                Steps = pr.GetValue(steps), LearningRate = pr.GetValue(lr), Seed = pr.GetValue(seed),
                SequenceLength = BenchCommand.ParseLengths(pr.GetValue(seqLen)!, "--seq-len")[0],
                TimeLimit = pr.GetValue(timeLimit) switch
                {
                    null => null,
                    > 0 and var t => TimeSpan.FromSeconds(t),
                    var t => throw new CliUsageException($"--time-limit {t}: must be a positive number of seconds."),
                },
            };
            if (options.Steps < 1) throw new CliUsageException($"--steps {options.Steps}: must be at least 1.");
            if (!(options.LearningRate > 0)) throw new CliUsageException($"--lr {options.LearningRate}: must be positive.");
            string outPath = pr.GetValue(output)!;
            string csvPath = pr.GetValue(lossCsv) ?? Path.ChangeExtension(outPath, null) + ".loss.csv";

            using var loaded = m.Load(pr);
            var log = new List<TrainingStep>();
            var trainer = new RetainingHeadTrainer(loaded.Model, loaded.Folder.Tokenizer);
            Console.Error.WriteLine($"training retaining heads: {options.Steps} steps, lr {options.LearningRate}, seq-len {options.SequenceLength}, seed {options.Seed}");
            using var heads = trainer.Train(options, s =>
            {
                log.Add(s);
                Console.Error.WriteLine($"step {s.Step}/{options.Steps} loss {s.Loss:G5} ({s.Seconds:F1} s)");
            });
            RetainingHeadsFile.Save(outPath, heads.ToCompressor());
            RetainingHeadTrainer.WriteLossCsv(csvPath, log);
            Console.WriteLine(outPath);
            string stopped = log.Count < options.Steps ? $" (stopped by the time limit after {log.Count} of {options.Steps} steps)" : "";
            Console.Error.WriteLine($"wrote {outPath} and {csvPath}; loss {log[0].Loss:G4} -> {log[^1].Loss:G4}{stopped}");
            return CliRun.Ok;
        }));
        return cmd;
    }

    private static Command DemoModel()
    {
        var output = new Option<string>("--out", "-o") { Description = "model folder to write (config.json, model.safetensors, tokenizer.json, ...)", Required = true };
        var steps = new Option<int>("--steps") { Description = "optimiser steps (with --time-limit: whichever ends first)", DefaultValueFactory = _ => 4000 };
        var timeLimit = new Option<double?>("--time-limit") { Description = "seconds for the training loop; the curriculum and learning rate follow the clock, the last phase always runs, the model is saved" };
        var maxLength = new Option<string>("--max-length") { Description = "longest training prompt in tokens, the last curriculum phase (e.g. 16k)", DefaultValueFactory = _ => "16k" };
        var seed = new Option<long>("--seed") { Description = "seed of the weights and the training samples", DefaultValueFactory = _ => 0 };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N (bf16 compute on CUDA, fp32 on CPU)", DefaultValueFactory = _ => "cpu" };
        var log = new Option<string?>("--log") { Description = "CSV of every step's loss, accuracy, learning rate and speed" };
        var batchTokens = new Option<int>("--batch-tokens") { Description = "tokens per step (a phase of length L batches tokens/L sequences)", DefaultValueFactory = _ => 65536 };
        var lr = new Option<double>("--lr") { Description = "peak AdamW learning rate (warm-up, then cosine to a tenth)", DefaultValueFactory = _ => 2e-3 };
        var size = new Option<string>("--size") { Description = "architecture: demo (4 layers, hidden 256, 3.7 M parameters) or tiny (tests)", DefaultValueFactory = _ => "demo" };
        var saveDtype = new Option<string>("--save-dtype") { Description = "dtype of the saved weights: bfloat16 or float32", DefaultValueFactory = _ => "bfloat16" };
        var curriculum = new Option<string?>("--curriculum") { Description = "phases as LENGTH:SHARE, e.g. 512:0.3,2k:0.2,8k:0.25,16k:0.25 (default: that, ending at --max-length)" };
        var taskWeights = new Option<string?>("--task-weights") { Description = "TASK:WEIGHT,... (default single-needle:0.15,multi-key:0.2,multi-value:0.15,variable-tracking:0.5)" };
        var untied = new Option<bool>("--untied-embeddings") { Description = "give lm_head its own weights instead of sharing the embedding table" };
        var questionInContext = new Option<double>("--question-in-context") { Description = "share of examples (0-1) whose document also holds the question after its header, as APB's anchor has it", DefaultValueFactory = _ => 0 };
        var init = new Option<string?>("--init") { Description = "continue from this demo model folder's weights (same --size; the tokenizer must match) instead of fresh ones" };
        var cmd = new Command("demo-model", "Train the small demo model (own tokenizer, Llama architecture) on the eval tasks with a length curriculum.")
            { output, steps, timeLimit, maxLength, seed, device, log, batchTokens, lr, size, saveDtype, curriculum, taskWeights, init, untied, questionInContext };
        cmd.SetAction(pr => CliRun.Guard(() =>
        {
            var options = new DemoTrainingOptions
            {
                Steps = pr.GetValue(steps), TimeLimitSeconds = pr.GetValue(timeLimit), Seed = pr.GetValue(seed),
                MaxLength = BenchCommand.ParseLengths(pr.GetValue(maxLength)!, "--max-length")[0],
                BatchTokens = pr.GetValue(batchTokens), LearningRate = pr.GetValue(lr),
                Architecture = Usage(() => DemoArchitecture.Named(pr.GetValue(size)!)) with { TieEmbeddings = !pr.GetValue(untied) },
                Curriculum = pr.GetValue(curriculum) is { } phases ? ParseCurriculum(phases) : null,
                InitFrom = pr.GetValue(init),
                QuestionInContextShare = pr.GetValue(questionInContext),
            };
            if (pr.GetValue(taskWeights) is { } weights) options = options with { TaskWeights = ParseTaskWeights(weights) };
            Usage(() => { options.Validate(); DemoModelTrainer.CheckInit(options); return 0; });
            var dtype = pr.GetValue(saveDtype)!.ToLowerInvariant() switch
            {
                "bfloat16" or "bf16" => ScalarType.BFloat16,
                "float32" or "fp32" => ScalarType.Float32,
                var other => throw new CliUsageException($"--save-dtype '{other}': expected bfloat16 or float32."),
            };
            string outDir = pr.GetValue(output)!;
            if (File.Exists(outDir)) throw new CliUsageException($"--out {outDir}: a file is in the way (expected a folder).");
            var dev = ModelOptions.ParseDevice(pr.GetValue(device)!);

            using var csv = pr.GetValue(log) is { } logPath ? OpenCsv(logPath) : null;
            csv?.WriteLine(DemoStep.CsvHeader);
            bool redrawn = !Console.IsErrorRedirected;
            void Info(string line)
            {
                if (redrawn) Console.Error.Write("\r" + new string(' ', 120) + "\r");
                Console.Error.WriteLine(line);
            }
            var trainer = new DemoModelTrainer(options, dev);
            var result = trainer.Train(outDir,
                onStep: s => { Console.WriteLine(s.ToLine()); csv?.WriteLine(s.ToCsv()); },
                onInfo: Info,
                onProgress: line => { if (redrawn) Console.Error.Write("\r" + line.PadRight(120)); else Console.Error.WriteLine(line); },
                saveDtype: dtype);
            if (redrawn) Console.Error.WriteLine();
            Console.Error.WriteLine($"trained {result.Log.Count} steps in {result.Seconds:F1} s (stopped by {result.StopReason}); " +
                                    $"final loss {result.FinalLoss:F4}, answer exact (teacher-forced) {result.FinalAnswerExact:P0}; wrote {outDir}");
            Console.WriteLine(outDir);
            return CliRun.Ok;
        }));
        return cmd;
    }

    private static CurriculumPhase[] ParseCurriculum(string text) =>
        text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(item =>
        {
            var parts = item.Split(':');
            if (parts.Length != 2 || !double.TryParse(parts[1], System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double share))
                throw new CliUsageException($"--curriculum: '{item}' is not LENGTH:SHARE (e.g. 2k:0.25).");
            return new CurriculumPhase(BenchCommand.ParseLengths(parts[0], "--curriculum")[0], share);
        }).ToArray();

    private static Dictionary<ApbCluster.Evaluation.Tasks.EvalTask, double> ParseTaskWeights(string text) =>
        text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(item =>
        {
            var parts = item.Split(':');
            if (parts.Length != 2 || !double.TryParse(parts[1], System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double w))
                throw new CliUsageException($"--task-weights: '{item}' is not TASK:WEIGHT (e.g. variable-tracking:0.5).");
            return (Task: Usage(() => ApbCluster.Evaluation.Tasks.EvalTasks.Parse(parts[0])), Weight: w);
        }).GroupBy(p => p.Task).ToDictionary(g => g.Key, g => g.Last().Weight);

    private static StreamWriter OpenCsv(string path)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null) Directory.CreateDirectory(dir);
        return new StreamWriter(path) { AutoFlush = true };
    }

    /// <summary>An option that parses but makes no sense is a usage error (exit code 2).</summary>
    private static T Usage<T>(Func<T> check)
    {
        try { return check(); }
        catch (ArgumentException e) { throw new CliUsageException(e.Message); }
    }
}
