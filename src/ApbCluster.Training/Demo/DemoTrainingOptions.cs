using ApbCluster.Evaluation.Tasks;

namespace ApbCluster.Training.Demo;

/// <summary>A curriculum phase: sequences of at most <paramref name="Length"/> tokens for <paramref name="Share"/> of the run.</summary>
public sealed record CurriculumPhase(int Length, double Share);

/// <summary>The demo model's training recipe (docs/training.md). Defaults are the committed model's.</summary>
public sealed record DemoTrainingOptions
{
    /// <summary>Shortest prompt the curriculum uses (the task generators need room for needles and question).</summary>
    public const int MinLength = 256;

    /// <summary>Optimiser steps; with <see cref="TimeLimitSeconds"/> the run ends at whichever comes first.</summary>
    public int Steps { get; init; } = 4000;
    /// <summary>Wall-clock budget of the training loop (null: none). Progress, the curriculum and the learning-rate
    /// schedule then follow the elapsed time, so the last phase (the longest sequences) always runs and the model is saved.</summary>
    public double? TimeLimitSeconds { get; init; }
    /// <summary>Longest prompt (document + question tokens): the last phase's length.</summary>
    public int MaxLength { get; init; } = 16384;
    public long Seed { get; init; }
    /// <summary>A demo model folder to continue training from (its weights; same architecture and tokenizer), or
    /// null for fresh weights. Continued runs still follow their own curriculum and learning-rate schedule.</summary>
    public string? InitFrom { get; init; }
    /// <summary>Tokens per step: a phase of length L batches max(1, BatchTokens / L) sequences (right-padded).</summary>
    public int BatchTokens { get; init; } = 65536;
    public double LearningRate { get; init; } = 2e-3;
    /// <summary>The cosine schedule ends at LearningRate x this.</summary>
    public double FinalLearningRateRatio { get; init; } = 0.1;
    /// <summary>Share of the run with a linear warm-up from 0 (a warm-up of at least 20 steps in step mode).</summary>
    public double WarmupShare { get; init; } = 0.03;
    public double Beta1 { get; init; } = 0.9;
    public double Beta2 { get; init; } = 0.95;
    /// <summary>AdamW's decoupled weight decay on matrices (not on norms or the embeddings).</summary>
    public double WeightDecay { get; init; } = 0.05;
    public double ClipNorm { get; init; } = 1.0;
    /// <summary>Weight of the language-model loss on every non-answer token (the answer loss has weight 1).</summary>
    public double LmWeight { get; init; } = 0.1;
    /// <summary>The LM loss takes every n-th non-answer position (logits over the vocabulary cost memory traffic).</summary>
    public int LmStride { get; init; } = 4;
    /// <summary>Share of examples whose document also holds the question right after its header, where APB's anchor
    /// embeds it (0: none, the recipe of the shipped model): teaches the layout later hosts see (docs/evaluation.md).</summary>
    public double QuestionInContextShare { get; init; }
    public DemoArchitecture Architecture { get; init; } = DemoArchitecture.Demo;
    /// <summary>Null: <see cref="DefaultCurriculum"/> of <see cref="MaxLength"/>.</summary>
    public IReadOnlyList<CurriculumPhase>? Curriculum { get; init; }
    /// <summary>Variable tracking is the hardest task (4 hops, each a match on a 3-token name): it gets half the samples.
    /// A CPU proxy learned single needle from ~13K samples but had only begun variable tracking after 64K (docs/training.md).</summary>
    public IReadOnlyDictionary<EvalTask, double> TaskWeights { get; init; } = new Dictionary<EvalTask, double>
    {
        [EvalTask.SingleNeedle] = 0.15, [EvalTask.MultiKey] = 0.2, [EvalTask.MultiValue] = 0.15, [EvalTask.VariableTracking] = 0.5,
    };

    /// <summary>The curriculum with its shares normalised to sum to 1.</summary>
    public IReadOnlyList<CurriculumPhase> Phases => Curriculum is { Count: > 0 } c && c.Sum(p => p.Share) is var total and > 0
        ? c.Select(p => p with { Share = p.Share / total }).ToArray()
        : Curriculum ?? DefaultCurriculum(MaxLength);

    /// <summary>512 -> 2K -> 8K -> max (those below max), shares 30/20/25/25 %, renormalised when max is short.
    /// Retrieval is learned cheaply on short sequences (many samples a step); the evaluated length gets a quarter.</summary>
    public static IReadOnlyList<CurriculumPhase> DefaultCurriculum(int maxLength)
    {
        (int Length, double Share)[] steps = [(512, 0.30), (2048, 0.20), (8192, 0.25)];
        var phases = steps.Where(s => s.Length < maxLength).Select(s => new CurriculumPhase(s.Length, s.Share)).ToList();
        phases.Add(new CurriculumPhase(maxLength, 0.25));
        double total = phases.Sum(p => p.Share);
        return phases.Select(p => p with { Share = p.Share / total }).ToArray();
    }

    /// <summary>Throws <see cref="ArgumentException"/> naming the bad setting.</summary>
    public void Validate()
    {
        Architecture.Validate();
        if (Steps < 1) throw new ArgumentException($"steps ({Steps}) must be at least 1.");
        if (TimeLimitSeconds is { } t && !(t > 0)) throw new ArgumentException($"time limit ({t} s) must be positive.");
        if (InitFrom is { } init && !Directory.Exists(init)) throw new ArgumentException($"init model folder {init} does not exist.");
        if (MaxLength < MinLength) throw new ArgumentException($"max length ({MaxLength}) must be at least {MinLength} tokens (room for the needles and the question).");
        if (MaxLength + 64 > Architecture.MaxPositions)
            throw new ArgumentException($"max length ({MaxLength}) + 64 answer tokens exceeds the model's max_position_embeddings ({Architecture.MaxPositions}).");
        if (BatchTokens < 1) throw new ArgumentException($"batch tokens ({BatchTokens}) must be positive.");
        if (!(LearningRate > 0)) throw new ArgumentException($"learning rate ({LearningRate}) must be positive.");
        if (LmStride < 1) throw new ArgumentException($"LM stride ({LmStride}) must be at least 1.");
        if (!(QuestionInContextShare >= 0 && QuestionInContextShare <= 1))
            throw new ArgumentException($"question-in-context share ({QuestionInContextShare}) must lie in [0, 1].");
        if (LmWeight < 0) throw new ArgumentException($"LM loss weight ({LmWeight}) must not be negative.");
        if (TaskWeights.Count == 0 || TaskWeights.Values.Any(w => !(w >= 0)) || !(TaskWeights.Values.Sum() > 0))
            throw new ArgumentException("task weights must be non-negative with a positive sum.");
        var phases = Phases;
        if (phases.Count == 0) throw new ArgumentException("the curriculum has no phases.");
        foreach (var p in phases)
        {
            if (p.Length < MinLength || p.Length > MaxLength) throw new ArgumentException($"phase length {p.Length} must lie in [{MinLength}, {MaxLength}].");
            if (!(p.Share > 0)) throw new ArgumentException($"phase share {p.Share} must be positive.");
        }
    }
}
