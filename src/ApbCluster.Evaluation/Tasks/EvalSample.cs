namespace ApbCluster.Evaluation.Tasks;

/// <summary>
/// One generated sample: the document (fed to prefill) and the question (Phase 2), as text and as token
/// ids of the tokenizer it was generated for, with the expected answers.
/// <see cref="TemplateOffset"/>: tokens of BOS + header, where APB embeds the question in its anchor.
/// <see cref="NeedlePositions"/>: token index in the document where each needle sentence starts.
/// </summary>
public sealed record EvalSample(
    EvalTask Task, int TargetTokens, long Seed, double Depth,
    string Document, string Question, IReadOnlyList<string> Answers,
    long[] DocumentIds, long[] QuestionIds, int TemplateOffset,
    IReadOnlyList<string> Needles, IReadOnlyList<int> NeedlePositions)
{
    public int TotalTokens => DocumentIds.Length + QuestionIds.Length;
    public ScoringRule Rule => Task.Rule();

    /// <summary>The answer as the model should write it after "Answer:".</summary>
    public string AnswerText => string.Join(", ", Answers);
}
