using ApbCluster.Parallel.Compression;
using System.CommandLine;
using ApbCluster.Evaluation;
using ApbCluster.Training;

namespace ApbCluster.Cli.Commands;

/// <summary>`apb train retaining-heads`: Locret retaining heads for a frozen model (docs/evaluation.md).</summary>
internal static class TrainCommand
{
    public static Command Create()
    {
        var train = new Command("train", "Train the runtime's learned parts (retaining heads) on a frozen model.");
        train.Subcommands.Add(RetainingHeads());
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
        var cmd = new Command("retaining-heads", "Locret training: frozen backbone, labels = max attention score from later tokens.")
            { output, steps, lr, seqLen, seed, lossCsv };
        m.AddTo(cmd);
        cmd.SetAction(pr => CliRun.Guard(() =>
        {
            var options = new RetainingHeadTrainingOptions
            {
                Steps = pr.GetValue(steps), LearningRate = pr.GetValue(lr), Seed = pr.GetValue(seed),
                SequenceLength = BenchCommand.ParseLengths(pr.GetValue(seqLen)!, "--seq-len")[0],
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
            Console.Error.WriteLine($"wrote {outPath} and {csvPath}; loss {log[0].Loss:G4} -> {log[^1].Loss:G4}");
            return CliRun.Ok;
        }));
        return cmd;
    }
}
