namespace ApbCluster.Model.Tokenization;

/// <summary>
/// A rendered chat prompt and its token ids. [UserContentStart, UserContentEnd) are the token
/// positions of the last user message's content: APB keeps the template tokens before it in
/// the anchor block and places the question after them.
/// </summary>
public sealed record TemplatedPrompt(string Text, IReadOnlyList<int> Ids, int UserContentStart, int UserContentEnd);
