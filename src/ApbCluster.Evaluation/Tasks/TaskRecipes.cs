namespace ApbCluster.Evaluation.Tasks;

/// <summary>A needle sentence and where it goes (fraction of the document's tokens).</summary>
public sealed record Needle(double Depth, string Text);

/// <summary>What a task puts into the haystack, what it asks and what it expects.</summary>
public sealed record TaskContent(IReadOnlyList<Needle> Needles, string Question, IReadOnlyList<string> Answers);

/// <summary>
/// The task recipes (docs/evaluation.md). <paramref name="depth"/> places the needle the question is about
/// (single-needle, multi-key) or the first value (multi-value); variable tracking spreads its chain over
/// the whole document so that the answer needs several hosts' blocks.
/// </summary>
public static class TaskRecipes
{
    public const int MultiKeyDistractors = 3;
    public const int MultiValueCount = 4;
    public const int ChainHops = 4;

    public static TaskContent Create(EvalTask task, double depth, FillerText f) => task switch
    {
        EvalTask.SingleNeedle => SingleNeedle(depth, f),
        EvalTask.MultiKey => MultiKey(depth, f),
        EvalTask.MultiValue => MultiValue(depth, f),
        EvalTask.VariableTracking => VariableTracking(f),
        _ => throw new ArgumentOutOfRangeException(nameof(task)),
    };

    private static string NeedleText(string key, string value) => $"One of the special magic numbers for {key} is: {value}.";
    private static string NumberQuestion(string key) => $"What is the special magic number for {key} mentioned in the text?";

    private static TaskContent SingleNeedle(double depth, FillerText f)
    {
        var key = f.Key([]);
        var value = f.Number([]);
        return new([new Needle(depth, NeedleText(key, value))], NumberQuestion(key), [value]);
    }

    /// <summary>The asked key at the controlled depth, distractor keys (other keys, other numbers) anywhere.</summary>
    private static TaskContent MultiKey(double depth, FillerText f)
    {
        var keys = new List<string>();
        var numbers = new List<string>();
        var key = f.Key(keys);
        var value = f.Number(numbers);
        var needles = new List<Needle> { new(depth, NeedleText(key, value)) };
        for (int i = 0; i < MultiKeyDistractors; i++) needles.Add(new Needle(f.Depth(), NeedleText(f.Key(keys), f.Number(numbers))));
        return new(needles, NumberQuestion(key), [value]);
    }

    /// <summary>Several numbers for one key; all must be returned (in any order).</summary>
    private static TaskContent MultiValue(double depth, FillerText f)
    {
        var key = f.Key([]);
        var numbers = new List<string>();
        var needles = new List<Needle>();
        for (int i = 0; i < MultiValueCount; i++)
            needles.Add(new Needle(i == 0 ? depth : f.Depth(), NeedleText(key, f.Number(numbers))));
        var answers = needles.OrderBy(n => n.Depth).Select(n => n.Text[(n.Text.LastIndexOf(' ') + 1)..^1]).ToArray();
        return new(needles, $"What are all the special magic numbers for {key} mentioned in the text?", answers);
    }

    /// <summary>A chain VAR A = 12345, VAR B = VAR A, ... at increasing depths spread over the document, plus
    /// a shorter distractor chain with another value; the answer is every variable of the first chain.</summary>
    private static TaskContent VariableTracking(FillerText f)
    {
        var names = new List<string>();
        var numbers = new List<string>();
        string value = f.Number(numbers, digits: 5), other = f.Number(numbers, digits: 5);
        var chain = Enumerable.Range(0, ChainHops).Select(_ => f.Variable(names)).ToArray();
        var needles = new List<Needle>();
        for (int i = 0; i < ChainHops; i++)
        {
            // Hop i lies in the i-th of ChainHops equal slices of the document.
            double d = (i + 0.15 + 0.7 * f.Rng.NextDouble()) / ChainHops;
            needles.Add(new Needle(d, i == 0 ? $"VAR {chain[0]} = {value}." : $"VAR {chain[i]} = VAR {chain[i - 1]}."));
        }
        var d1 = f.Variable(names);
        var d2 = f.Variable(names);
        double a = f.Depth(), b = f.Depth();
        needles.Add(new Needle(Math.Min(a, b), $"VAR {d1} = {other}."));
        needles.Add(new Needle(Math.Max(a, b), $"VAR {d2} = VAR {d1}."));
        return new(needles, $"Find all variables that are assigned the value {value}, directly or through other variables.", chain);
    }
}
