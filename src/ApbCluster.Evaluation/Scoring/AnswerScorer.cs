using System.Text.RegularExpressions;
using ApbCluster.Evaluation.Tasks;

namespace ApbCluster.Evaluation.Scoring;

/// <summary>
/// Exact-match scoring. The model answers after "Answer:"; only its first non-empty line counts (greedy
/// decoding may run on after the answer). Whitespace is normalised and a trailing full stop ignored.
/// </summary>
public static partial class AnswerScorer
{
    public static bool IsCorrect(ScoringRule rule, IReadOnlyList<string> expected, string prediction)
    {
        var line = AnswerLine(prediction);
        return rule switch
        {
            ScoringRule.Exact => expected.Count == 1 && line == Normalize(expected[0]),
            ScoringRule.AllPresent => expected.All(new HashSet<string>(Words().Split(line)).Contains),
            _ => throw new ArgumentOutOfRangeException(nameof(rule)),
        };
    }

    public static bool IsCorrect(EvalSample sample, string prediction) => IsCorrect(sample.Rule, sample.Answers, prediction);

    /// <summary>Collapses runs of whitespace to one space and trims.</summary>
    public static string Normalize(string text) => Whitespace().Replace(text, " ").Trim();

    /// <summary>The first non-empty line, normalised, without a trailing full stop.</summary>
    public static string AnswerLine(string prediction)
    {
        var line = prediction.Split('\n').Select(Normalize).FirstOrDefault(l => l.Length > 0) ?? "";
        return line.TrimEnd('.');
    }

    [GeneratedRegex(@"\s+")]
    private static partial Regex Whitespace();

    [GeneratedRegex(@"[^A-Za-z0-9\-]+")]
    private static partial Regex Words();
}
