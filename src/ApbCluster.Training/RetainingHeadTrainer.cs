using System.Diagnostics;
using System.Globalization;
using ApbCluster.Evaluation.Tasks;
using ApbCluster.Model.Layers;
using ApbCluster.Model.Tokenization;
using TorchSharp;
using static TorchSharp.torch;

namespace ApbCluster.Training;

/// <summary>Locret's recipe (docs/algorithm.md, "Locret training"); defaults are the paper's except the sequence length.</summary>
public sealed record RetainingHeadTrainingOptions
{
    public int Steps { get; init; } = 3000;
    public double LearningRate { get; init; } = 5e-4;
    public double Beta1 { get; init; } = 0.9;
    public double Beta2 { get; init; } = 0.95;
    /// <summary>AdamW's decoupled weight decay (PyTorch's default).</summary>
    public double WeightDecay { get; init; } = 0.01;
    /// <summary>Weight of the MSE between neighbouring tokens' predictions.</summary>
    public double SmoothnessWeight { get; init; } = 0.0025;
    /// <summary>Tokens of each training prompt (document + question; the answer follows).</summary>
    public int SequenceLength { get; init; } = 4096;
    public long Seed { get; init; }
    /// <summary>Wall time after which no further step starts (the first always runs): a device call with a fixed
    /// budget then still gets heads, trained for fewer steps. Null: exactly <see cref="Steps"/>.</summary>
    public TimeSpan? TimeLimit { get; init; }
}

/// <summary>Loss after one optimiser step (mean over layers).</summary>
public sealed record TrainingStep(int Step, double Loss, double Seconds);

/// <summary>
/// Trains retaining heads on a frozen model: each step generates one eval-task sequence (document, question,
/// answer; tasks in turn), computes Locret labels from a no-grad forward, and takes one AdamW step on
/// SmoothL1(pred, label) + w * MSE(pred[t+1], pred[t]) averaged over layers. Batch 1, as in the paper.
/// </summary>
public sealed class RetainingHeadTrainer(LlamaModel model, TextTokenizer tokenizer)
{
    public TrainableRetainingHeads Train(RetainingHeadTrainingOptions o, Action<TrainingStep>? onStep = null)
    {
        if (o.Steps < 1) throw new ArgumentException($"steps ({o.Steps}) must be at least 1.");
        if (o.SequenceLength + 64 > model.Config.MaxPositionEmbeddings)
            throw new ArgumentException($"seq-len {o.SequenceLength} (+ answer) exceeds the model's max_position_embeddings ({model.Config.MaxPositionEmbeddings}).");
        var c = model.Config;
        int inputWidth = (c.NumHeads + 2 * c.NumKvHeads) * c.HeadDim;
        var heads = new TrainableRetainingHeads(c.NumLayers, inputWidth, c.NumKvHeads, o.Seed, model.Device);
        using var optimizer = optim.AdamW(heads.Parameters, o.LearningRate, o.Beta1, o.Beta2, weight_decay: o.WeightDecay);
        var generator = new SampleGenerator(tokenizer);
        var clock = Stopwatch.StartNew();
        for (int step = 1; step <= o.Steps; step++)
        {
            if (step > 1 && clock.Elapsed >= o.TimeLimit) break;
            using var scope = NewDisposeScope();
            var (ids, context) = Sequence(generator, step, o);
            var targets = LocretTargets.Compute(model, ids, context);
            optimizer.zero_grad();
            var loss = Loss(heads, targets, o.SmoothnessWeight);
            loss.backward();
            optimizer.step();
            onStep?.Invoke(new TrainingStep(step, loss.item<float>(), clock.Elapsed.TotalSeconds));
        }
        return heads;
    }

    /// <summary>Mean over layers of SmoothL1 to the labels plus the smoothness term between neighbouring tokens.</summary>
    public static Tensor Loss(TrainableRetainingHeads heads, IReadOnlyList<LayerTargets> targets, double smoothnessWeight)
    {
        Tensor? total = null;
        for (int i = 0; i < targets.Count; i++)
        {
            var pred = heads.Predict(i, targets[i].Features);
            var fit = nn.functional.smooth_l1_loss(pred, targets[i].Labels);
            long n = pred.shape[0];
            var smooth = n > 1 ? nn.functional.mse_loss(pred.narrow(0, 1, n - 1), pred.narrow(0, 0, n - 1)) : zeros_like(fit);
            var layerLoss = fit + smooth * smoothnessWeight;
            total = total is null ? layerLoss : total + layerLoss;
        }
        return total! / targets.Count;
    }

    /// <summary>Step's sequence: a generated sample's document, question and answer; context = the document.</summary>
    private (long[] Ids, int Context) Sequence(SampleGenerator generator, int step, RetainingHeadTrainingOptions o)
    {
        var task = EvalTasks.All[(step - 1) % EvalTasks.All.Count];
        var sample = generator.Generate(task, o.SequenceLength, o.Seed * 100_003 + step);
        var answer = tokenizer.Encode(" " + sample.AnswerText, addBos: false).Select(i => (long)i);
        return (sample.DocumentIds.Concat(sample.QuestionIds).Concat(answer).ToArray(), sample.DocumentIds.Length);
    }

    public static void WriteLossCsv(string path, IEnumerable<TrainingStep> log)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null) Directory.CreateDirectory(dir);
        var inv = CultureInfo.InvariantCulture;
        File.WriteAllLines(path, log.Select(s => string.Format(inv, "{0},{1:G6},{2:F2}", s.Step, s.Loss, s.Seconds)).Prepend("step,loss,seconds"));
    }
}
