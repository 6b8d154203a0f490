using ApbCluster.Model;
using System.Diagnostics;
using System.Globalization;
using ApbCluster.Model.Config;
using ApbCluster.Model.Loading;
using TorchSharp;
using static TorchSharp.torch;

namespace ApbCluster.Training.Demo;

/// <summary>One optimiser step's numbers. Losses are token means; <see cref="AnswerExact"/> is the share of the batch's
/// sequences whose answer tokens (and EOS) were all argmax-correct under teacher forcing. <see cref="TokensPerSecond"/>
/// counts the step's real (unpadded) tokens over its whole time, <see cref="DataWait"/> included (the seconds spent
/// waiting for the batch: near 0 unless the data workers fall behind).</summary>
public sealed record DemoStep(
    int Step, int Phase, int Length, int Batch, double Loss, double AnswerLoss, double LmLoss, double AnswerTokenAccuracy,
    double AnswerExact, double LearningRate, double GradNorm, double TokensPerSecond, double Seconds, double Progress, double DataWait = 0)
{
    public const string CsvHeader =
        "step,phase,length,batch,loss,answer_loss,lm_loss,answer_token_acc,answer_exact,lr,grad_norm,tokens_per_s,elapsed_s,data_wait_s";

    public string ToCsv() => string.Format(CultureInfo.InvariantCulture,
        "{0},{1},{2},{3},{4:G6},{5:G6},{6:G6},{7:F4},{8:F4},{9:G4},{10:G4},{11:F0},{12:F2},{13:F4}",
        Step, Phase + 1, Length, Batch, Loss, AnswerLoss, LmLoss, AnswerTokenAccuracy, AnswerExact, LearningRate, GradNorm, TokensPerSecond, Seconds, DataWait);

    public string ToLine() => string.Format(CultureInfo.InvariantCulture,
        "step {0} len {1} x{2} loss {3:F4} answer {4:F4} lm {5:F4} acc {6:P0} exact {7:P0} lr {8:G3} tok/s {9:F0} t {10:F1}s",
        Step, Length, Batch, Loss, AnswerLoss, LmLoss, AnswerTokenAccuracy, AnswerExact, LearningRate, TokensPerSecond, Seconds);
}

/// <summary>What one curriculum phase did.</summary>
public sealed record DemoPhaseSummary(int Length, int Batch, double Share, int Steps, double Seconds, long Tokens, double FinalLoss, double FinalAnswerExact);

public sealed record DemoTrainingResult(
    IReadOnlyList<DemoStep> Log, IReadOnlyList<DemoPhaseSummary> Phases, double Seconds, string StopReason,
    long Parameters, int TokenizerSize, string Device, string ComputeDtype)
{
    /// <summary>Mean loss of the last (up to) 20 steps.</summary>
    public double FinalLoss => Log.TakeLast(20).Average(s => s.Loss);
    public double FinalAnswerExact => Log.TakeLast(20).Average(s => s.AnswerExact);
}

/// <summary>
/// Trains the demo model (docs/training.md): a fresh <see cref="TrainableLlama"/> and its own tokenizer, on the
/// evaluation tasks in eval's exact prompt layout, with a length curriculum ending at the maximum length. Loss:
/// cross-entropy on the answer tokens and EOS, plus <see cref="DemoTrainingOptions.LmWeight"/> x the LM loss on
/// every other token. AdamW, warm-up + cosine, gradient clipping; bf16 compute on CUDA, fp32 on CPU.
/// Progress (which sets the phase and the learning rate) is steps done / steps, or elapsed / time limit when that is
/// further: on CPU with steps only, a run is deterministic for its seed.
/// </summary>
public sealed class DemoModelTrainer(DemoTrainingOptions options, Device device)
{
    /// <summary>Runs the training and writes the whole model folder into <paramref name="outDir"/>.</summary>
    /// <param name="onStep">Every step's numbers (the CLI prints and logs them).</param>
    /// <param name="onInfo">Plans and phase changes, one line each.</param>
    /// <param name="onProgress">A status line, at most every 2 s.</param>
    public DemoTrainingResult Train(string outDir, Action<DemoStep>? onStep = null, Action<string>? onInfo = null,
        Action<string>? onProgress = null, ScalarType saveDtype = ScalarType.BFloat16)
    {
        var o = options;
        o.Validate();
        _ = DemoModelFolder.DtypeName(saveDtype);
        // Read before anything is written: --out may be the --init folder itself.
        var initRecord = o.InitFrom is { } from ? DemoModelFolder.ReadTrainingRecord(from) : null;
        var phases = o.Phases;
        var compute = device.type == DeviceType.CUDA ? ScalarType.BFloat16 : ScalarType.Float32;

        var tokenizer = DemoTokenizer.Build();
        DemoModelFolder.WriteTokenizer(outDir, tokenizer);
        var config = o.Architecture.ToConfig(tokenizer.Size, tokenizer.BosId, tokenizer.EosId, DemoModelFolder.DtypeName(saveDtype));
        using var model = o.InitFrom is { } init ? Continue(init, config, tokenizer, device) : TrainableLlama.Create(config, o.Seed, device);
        if (o.InitFrom is not null) onInfo?.Invoke($"continuing from {o.InitFrom}");
        using var decayMask = model.Mask((name, shape) => shape.Length == 2 && name != "model.embed_tokens.weight"); // matrices only
        using var optimizer = new FlatAdamW(model.Flat, decayMask, o.Beta1, o.Beta2, 1e-8, o.WeightDecay);
        using var examples = new DemoExamples(outDir, o.Seed, o.TaskWeights, questionInContext: o.QuestionInContextShare);

        onInfo?.Invoke($"demo model: {model.ParameterCount:N0} parameters ({config.NumLayers} layers, hidden {config.HiddenSize}, " +
                       $"{config.NumHeads}/{config.NumKvHeads} heads of {config.HeadDim}, MLP {config.IntermediateSize}), " +
                       $"tokenizer {tokenizer.Size} tokens, {device} {compute}");
        onInfo?.Invoke(o.TimeLimitSeconds is { } limit
            ? $"budget: {limit:F0} s or {o.Steps} steps, whichever ends first; phases by share of the time"
            : $"budget: {o.Steps} steps");
        for (int i = 0; i < phases.Count; i++)
            onInfo?.Invoke($"phase {i + 1}/{phases.Count}: up to {phases[i].Length} tokens, {BatchSize(phases[i])} sequences a step, " +
                           $"{phases[i].Share:P0} of the run" + (o.TimeLimitSeconds is null ? $" = {PlannedSteps(i)} steps" : ""));

        var log = new List<DemoStep>();
        var phaseSteps = new int[phases.Count];
        var phaseSeconds = new double[phases.Count];
        var phaseTokens = new long[phases.Count];
        var phaseSecondsAt5 = new double[phases.Count];
        var clock = Stopwatch.StartNew();
        double lastProgressLine = double.NegativeInfinity;
        int current = -1;
        string stop = "steps";
        for (int step = 0; ; step++)
        {
            double elapsed = clock.Elapsed.TotalSeconds;
            double progress = Progress(step, elapsed);
            if (progress >= 1)
            {
                stop = o.TimeLimitSeconds is { } tl && elapsed >= tl ? "time limit" : "steps";
                break;
            }
            int phase = PhaseAt(progress);
            if (phase != current)
            {
                if (current >= 0)
                {
                    onInfo?.Invoke($"phase {current + 1} done: {phaseSteps[current]} steps in {phaseSeconds[current]:F1} s, " +
                                   $"answer exact {Mean(log, current, s => s.AnswerExact):P0}, loss {Mean(log, current, s => s.Loss):F4}; saved");
                    DemoModelFolder.WriteModel(outDir, model, saveDtype); // a checkpoint, in case a later phase fails
                }
                current = phase;
            }
            var p = phases[phase];
            var stepClock = Stopwatch.StartNew();
            var batch = examples.Get(new BatchKey(phase, phaseSteps[phase], p.Length, BatchSize(p)));
            double dataWait = stepClock.Elapsed.TotalSeconds;
            double lr = LearningRate(Math.Max(progress, (step + 1.0) / o.Steps));

            double[] stats;
            using (var scope = NewDisposeScope())
            {
                var (loss, values) = Loss(model, batch, examples.EosId, compute);
                optimizer.ZeroGrad();
                loss.backward();
                var gradNorm = ClipGradients(model, o.ClipNorm);
                optimizer.Step(lr);
                // The step's one host sync: its numbers, read after every kernel of the step is queued.
                stats = cat([values, gradNorm.reshape(1)]).to(ScalarType.Float64, CPU).data<double>().ToArray();
            }
            double seconds = stepClock.Elapsed.TotalSeconds;
            long tokens = batch.Sum(e => (long)e.Ids.Length);
            phaseSteps[phase]++;
            phaseSeconds[phase] += seconds;
            phaseTokens[phase] += tokens;
            var record = new DemoStep(step + 1, phase, p.Length, batch.Length, stats[0], stats[1], stats[2], stats[3], stats[4], lr, stats[5],
                tokens / Math.Max(seconds, 1e-9), clock.Elapsed.TotalSeconds, progress, dataWait);
            log.Add(record);
            onStep?.Invoke(record);
            // Plan from steps 6-15 (the first ones carry warm-up: CUDA context, kernel selection, the first batches).
            if (phaseSteps[phase] == 5) phaseSecondsAt5[phase] = phaseSeconds[phase];
            if (o.TimeLimitSeconds is { } budget && phaseSteps[phase] == 15)
            {
                double perStep = (phaseSeconds[phase] - phaseSecondsAt5[phase]) / 10;
                double wait = log.TakeLast(10).Average(s => s.DataWait);
                onInfo?.Invoke($"phase {phase + 1}: {perStep:F3} s a step ({wait:F3} s of it waiting for data) -> about " +
                               $"{(int)(p.Share * budget / perStep)} steps planned in its {p.Share * budget:F0} s");
            }
            if (record.Seconds - lastProgressLine >= 2)
            {
                lastProgressLine = record.Seconds;
                onProgress?.Invoke(ProgressLine(record, phases.Count));
            }
        }
        if (current >= 0)
            onInfo?.Invoke($"phase {current + 1} done: {phaseSteps[current]} steps in {phaseSeconds[current]:F1} s, " +
                           $"answer exact {Mean(log, current, s => s.AnswerExact):P0}, loss {Mean(log, current, s => s.Loss):F4}");
        double total = clock.Elapsed.TotalSeconds;

        DemoModelFolder.WriteModel(outDir, model, saveDtype);
        var summaries = phases.Select((p, i) => new DemoPhaseSummary(p.Length, BatchSize(p), p.Share, phaseSteps[i], phaseSeconds[i], phaseTokens[i],
            Mean(log, i, s => s.Loss), Mean(log, i, s => s.AnswerExact))).ToArray();
        var result = new DemoTrainingResult(log, summaries, total, stop, model.ParameterCount, tokenizer.Size, device.ToString(), compute.ToString());
        DemoModelFolder.WriteTrainingRecord(outDir, Record(result, saveDtype, initRecord));
        return result;

        double Progress(int stepsDone, double seconds) =>
            Math.Max((double)stepsDone / o.Steps, o.TimeLimitSeconds is { } l ? seconds / l : 0);

        int PhaseAt(double progress)
        {
            double cumulative = 0;
            for (int i = 0; i < phases.Count; i++)
                if (progress < (cumulative += phases[i].Share)) return i;
            return phases.Count - 1;
        }

        int PlannedSteps(int phase)
        {
            int count = 0;
            for (int s = 0; s < o.Steps; s++) if (PhaseAt((double)s / o.Steps) == phase) count++;
            return count;
        }
    }

    /// <summary>Scales the gradient so its L2 norm is at most <paramref name="maxNorm"/> (torch's clip_grad_norm_: factor
    /// max / (norm + 1e-6), capped at 1) and returns the norm before clipping, with tensor ops only: TorchSharp's version
    /// returns a double, a host sync between backward and the optimiser.</summary>
    public static Tensor ClipGradients(TrainableLlama model, double maxNorm)
    {
        using var noGrad = no_grad();
        var g = model.Flat.grad ?? throw new InvalidOperationException("no gradient to clip: run backward first.");
        var dev = g.device;
        var total = g.norm();
        var scale = tensor(maxNorm, dtype: ScalarType.Float32, device: dev)
            .div(total.add(tensor(1e-6, dtype: ScalarType.Float32, device: dev), TorchConstants.One))
            .minimum(tensor(1.0, dtype: ScalarType.Float32, device: dev));
        g.mul_(scale);
        return total;
    }

    public int BatchSize(CurriculumPhase p) => Math.Max(1, options.BatchTokens / p.Length);

    /// <summary>Linear warm-up over <see cref="DemoTrainingOptions.WarmupShare"/>, then cosine down to the final ratio.</summary>
    public double LearningRate(double progress)
    {
        var o = options;
        progress = Math.Clamp(progress, 0, 1);
        if (progress < o.WarmupShare) return o.LearningRate * progress / o.WarmupShare;
        double t = o.WarmupShare >= 1 ? 1 : (progress - o.WarmupShare) / (1 - o.WarmupShare);
        double ratio = o.FinalLearningRateRatio + (1 - o.FinalLearningRateRatio) * 0.5 * (1 + Math.Cos(Math.PI * t));
        return o.LearningRate * ratio;
    }

    /// <summary>The step's loss (with autograd) and its numbers [loss, answer loss, LM loss, answer token accuracy, answer exact].
    /// Logits are computed only where a loss is taken: every answer position and every <see cref="DemoTrainingOptions.LmStride"/>-th other one.
    /// No implicit TorchSharp Scalars (<see cref="TorchConstants"/>): constants are 0-dim tensors.</summary>
    public (Tensor Loss, Tensor Values) Loss(TrainableLlama model, IReadOnlyList<DemoExample> batch, int padId, ScalarType compute)
    {
        var t = Tensors(batch, padId, options.LmStride, model.Device);
        var normed = model.ForwardNormed(t.Ids, compute);
        var selected = normed.view(-1, normed.shape[^1]).index_select(0, t.Positions);
        var logits = model.Logits(selected, compute);
        var ce = nn.functional.cross_entropy(logits.to(ScalarType.Float32), t.Targets, reduction: nn.Reduction.None);
        var answerLoss = ce.mul(t.IsAnswer).sum().div(t.AnswerCount);
        var lmLoss = ce.mul(t.IsLm).sum().div(t.LmCount);
        var loss = options.LmWeight > 0
            ? answerLoss.add(lmLoss.mul(tensor(options.LmWeight, dtype: ScalarType.Float32, device: model.Device)), TorchConstants.One)
            : answerLoss;
        using var noGrad = no_grad();
        var wrong = logits.argmax(-1).ne(t.Targets).to(ScalarType.Float32).mul(t.IsAnswer);
        var accuracy = t.IsAnswer.sub(wrong).sum().div(t.AnswerCount);
        var wrongPerRow = zeros(batch.Count, dtype: ScalarType.Float32, device: model.Device).scatter_add_(0, t.Rows, wrong);
        var exact = wrongPerRow.logical_not().to(ScalarType.Float32).mean();
        var values = stack([loss.detach(), answerLoss.detach(), lmLoss.detach(), accuracy, exact]);
        return (loss, values);
    }

    /// <summary>A batch as tensors: right-padded ids [B, T]; the flat positions (row x T + column) where a loss is
    /// taken, with their next-token targets, 1 for answer positions (<see cref="IsAnswer"/>) or LM ones (<see cref="IsLm"/>),
    /// their rows, and the two counts (0-dim, at least 1).</summary>
    public sealed record BatchTensors(Tensor Ids, Tensor Positions, Tensor Targets, Tensor IsAnswer, Tensor IsLm, Tensor Rows,
        Tensor AnswerCount, Tensor LmCount);

    /// <summary>Answer positions: from the prompt's last token (which predicts the first answer token) to the one before
    /// EOS. LM positions: every <paramref name="lmStride"/>-th earlier position, from an offset that varies by row.</summary>
    public static BatchTensors Tensors(IReadOnlyList<DemoExample> batch, int padId, int lmStride, Device device)
    {
        int b = batch.Count, t = batch.Max(e => e.Ids.Length);
        var ids = new long[b * t];
        Array.Fill(ids, padId);
        var positions = new List<long>();
        var targets = new List<long>();
        var isAnswer = new List<float>();
        var rows = new List<long>();
        for (int r = 0; r < b; r++)
        {
            var e = batch[r];
            int n = e.Ids.Length;
            Array.Copy(e.Ids, 0, ids, r * t, n);
            for (int i = 0; i + 1 < n; i++)
            {
                bool answer = i >= e.PromptLength - 1;
                if (!answer && (i + r) % lmStride != 0) continue;
                positions.Add((long)r * t + i);
                targets.Add(e.Ids[i + 1]);
                isAnswer.Add(answer ? 1 : 0);
                rows.Add(r);
            }
        }
        int answers = (int)isAnswer.Sum();
        return new BatchTensors(tensor(ids, [b, t], device: device), tensor(positions.ToArray(), device: device),
            tensor(targets.ToArray(), device: device), tensor(isAnswer.ToArray(), device: device),
            tensor(isAnswer.Select(a => 1 - a).ToArray(), device: device), tensor(rows.ToArray(), device: device),
            tensor((float)Math.Max(1, answers), device: device), tensor((float)Math.Max(1, isAnswer.Count - answers), device: device));
    }

    private static double Mean(List<DemoStep> log, int phase, Func<DemoStep, double> value)
    {
        var steps = log.Where(s => s.Phase == phase).TakeLast(20).ToList();
        return steps.Count == 0 ? double.NaN : steps.Average(value);
    }

    private string ProgressLine(DemoStep s, int phaseCount)
    {
        const int width = 24;
        int filled = (int)Math.Round(Math.Clamp(s.Progress, 0, 1) * width);
        double left = s.Progress > 0 ? s.Seconds / s.Progress - s.Seconds : double.NaN;
        return string.Format(CultureInfo.InvariantCulture,
            "[{0}{1}] {2,3:F0}% phase {3}/{4} ({5} tokens x {6}) step {7} loss {8:F3} exact {9:P0} {10} elapsed, ~{11} left",
            new string('#', filled), new string('.', width - filled), s.Progress * 100, s.Phase + 1, phaseCount, s.Length, s.Batch,
            s.Step, s.Loss, s.AnswerExact, Clock(s.Seconds), double.IsFinite(left) ? Clock(left) : "?");
    }

    private static string Clock(double seconds) => TimeSpan.FromSeconds(Math.Max(0, seconds)).ToString(@"m\:ss", CultureInfo.InvariantCulture);

    /// <summary>Checks that <see cref="DemoTrainingOptions.InitFrom"/> (when set) holds this architecture with this build's
    /// tokenizer (the token ids must mean the same); throws <see cref="ArgumentException"/> naming the difference.</summary>
    public static void CheckInit(DemoTrainingOptions o)
    {
        if (o.InitFrom is not { } dir) return;
        var tokenizer = DemoTokenizer.Build();
        CheckInit(dir, o.Architecture.ToConfig(tokenizer.Size, tokenizer.BosId, tokenizer.EosId, "bfloat16"), tokenizer);
    }

    private static void CheckInit(string dir, ModelConfig config, DemoTokenizer.Files tokenizer)
    {
        var tokenizerPath = Path.Combine(dir, DemoTokenizer.FileName);
        if (!File.Exists(Path.Combine(dir, ModelConfig.FileName)))
            throw new ArgumentException($"init model {dir}: no {ModelConfig.FileName} there.");
        if (!File.Exists(tokenizerPath) || File.ReadAllText(tokenizerPath) != tokenizer.TokenizerJson)
            throw new ArgumentException($"init model {dir}: its {DemoTokenizer.FileName} is not this build's demo tokenizer (token ids would differ).");
        var c = ModelConfigLoader.Load(Path.Combine(dir, ModelConfig.FileName));
        (string Name, object Theirs, object Ours)[] fields =
        [
            ("num_hidden_layers", c.NumLayers, config.NumLayers), ("hidden_size", c.HiddenSize, config.HiddenSize),
            ("num_attention_heads", c.NumHeads, config.NumHeads), ("num_key_value_heads", c.NumKvHeads, config.NumKvHeads),
            ("intermediate_size", c.IntermediateSize, config.IntermediateSize), ("vocab_size", c.VocabSize, config.VocabSize),
            ("max_position_embeddings", c.MaxPositionEmbeddings, config.MaxPositionEmbeddings), ("rope_theta", c.RopeTheta, config.RopeTheta),
        ];
        // Tied -> untied is allowed (lm_head starts as a copy of the embedding table); untied -> tied would drop weights.
        if (!c.TieWordEmbeddings && config.TieWordEmbeddings)
            fields = [.. fields, ("tie_word_embeddings", c.TieWordEmbeddings, config.TieWordEmbeddings)];
        foreach (var (name, theirs, ours) in fields)
            if (!theirs.Equals(ours))
                throw new ArgumentException($"init model {dir}: {name} is {theirs}, this architecture has {ours} (pick the matching --size and --untied-embeddings).");
    }

    /// <summary>The weights of an earlier run's folder (checked by <see cref="CheckInit(DemoTrainingOptions)"/>), as fp32 trainable weights.</summary>
    private static TrainableLlama Continue(string dir, ModelConfig config, DemoTokenizer.Files tokenizer, Device device)
    {
        CheckInit(dir, config, tokenizer);
        using var folder = ModelFolder.Open(dir);
        // Untying a tied checkpoint: lm_head starts as a copy of the embedding table, so the model's outputs are unchanged.
        bool untie = folder.Config.TieWordEmbeddings && !config.TieWordEmbeddings;
        var tensors = TrainableLlama.Shapes(config).ToDictionary(s => s.Name, s =>
            folder.Weights.Load(untie && s.Name == "lm_head.weight" ? "model.embed_tokens.weight" : s.Name, s.Shape, ScalarType.Float32, CPU));
        try
        {
            return TrainableLlama.FromTensors(config, tensors, device);
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }

    private object Record(DemoTrainingResult r, ScalarType saveDtype, System.Text.Json.Nodes.JsonNode? initRecord)
    {
        var o = options;
        return new Dictionary<string, object?>
        {
            ["recipe"] = "apb train demo-model (docs/training.md)",
            ["seed"] = o.Seed,
            ["init_from"] = o.InitFrom is null ? null : Path.GetFullPath(o.InitFrom),
            ["steps"] = r.Log.Count,
            ["max_steps"] = o.Steps,
            ["time_limit_s"] = o.TimeLimitSeconds,
            ["stopped_by"] = r.StopReason,
            ["seconds"] = Math.Round(r.Seconds, 2),
            ["final_loss"] = r.FinalLoss,
            ["final_answer_exact"] = r.FinalAnswerExact,
            ["max_length"] = o.MaxLength,
            ["batch_tokens"] = o.BatchTokens,
            ["learning_rate"] = o.LearningRate,
            ["final_lr_ratio"] = o.FinalLearningRateRatio,
            ["warmup_share"] = o.WarmupShare,
            ["betas"] = new[] { o.Beta1, o.Beta2 },
            ["weight_decay"] = o.WeightDecay,
            ["clip_norm"] = o.ClipNorm,
            ["lm_weight"] = o.LmWeight,
            ["lm_stride"] = o.LmStride,
            ["task_weights"] = o.TaskWeights.ToDictionary(p => p.Key.ToString(), p => p.Value),
            ["question_in_context_share"] = o.QuestionInContextShare,
            ["architecture"] = o.Architecture,
            ["parameters"] = r.Parameters,
            ["tokenizer_size"] = r.TokenizerSize,
            ["device"] = r.Device,
            ["compute_dtype"] = r.ComputeDtype,
            ["saved_dtype"] = DemoModelFolder.DtypeName(saveDtype),
            ["phases"] = r.Phases,
            ["sample_seeds"] = $"from {DemoExamples.SeedBase} + seed x 1e8 + phase x 1e7 (eval uses small seeds)",
            // The whole lineage of a continued model: the init folder's own record, nested.
            ["init_record"] = initRecord,
        };
    }
}
