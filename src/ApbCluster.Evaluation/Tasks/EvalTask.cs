namespace ApbCluster.Evaluation.Tasks;

/// <summary>The synthetic tasks (RULER-style). Names on the command line are the kebab-case forms.</summary>
public enum EvalTask { SingleNeedle, MultiKey, MultiValue, VariableTracking }

/// <summary>How a prediction is compared with the expected answers.</summary>
public enum ScoringRule
{
    /// <summary>The answer line equals the single expected answer (whitespace normalised).</summary>
    Exact,
    /// <summary>Every expected answer appears as a whole word in the answer line.</summary>
    AllPresent,
}

public static class EvalTasks
{
    public static readonly IReadOnlyList<EvalTask> All = Enum.GetValues<EvalTask>();

    public static string Name(this EvalTask t) => t switch
    {
        EvalTask.SingleNeedle => "single-needle",
        EvalTask.MultiKey => "multi-key",
        EvalTask.MultiValue => "multi-value",
        EvalTask.VariableTracking => "variable-tracking",
        _ => throw new ArgumentOutOfRangeException(nameof(t)),
    };

    public static ScoringRule Rule(this EvalTask t) =>
        t is EvalTask.MultiValue or EvalTask.VariableTracking ? ScoringRule.AllPresent : ScoringRule.Exact;

    /// <summary>Parses a task name; throws <see cref="ArgumentException"/> listing the known ones.</summary>
    public static EvalTask Parse(string name)
    {
        foreach (var t in All)
            if (t.Name() == name.Trim().ToLowerInvariant()) return t;
        throw new ArgumentException($"unknown task '{name}': expected one of {string.Join(", ", All.Select(x => x.Name()))}.");
    }
}
