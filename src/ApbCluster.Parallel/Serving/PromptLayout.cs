using ApbCluster.Model.Tokenization;

namespace ApbCluster.Parallel.Serving;

/// <summary>
/// How a (document, question) pair becomes APB's two token sequences, in every path that serves one (`apb ask`,
/// `apb eval`, the cluster's router, HTTP): the same text gives the same ids everywhere. With a chat template the
/// user message is "document\n\nquestion": the document part is the template's opening tokens plus the document;
/// the question part is "\n\nquestion" plus the template's closing tokens (assistant header), so Phase 2 ends
/// exactly where generation starts. TemplateOffset is where the user content begins: the anchor embeds the question
/// there. Models without a template get "document\nquestion" (BOS first when the tokenizer has one).
/// </summary>
public sealed record PromptLayout(long[] Document, long[] Question, int TemplateOffset)
{
    public int Length => Document.Length + Question.Length;

    public static PromptLayout Build(TextTokenizer tokenizer, ChatTemplate template, string document, string question)
    {
        if (template is PlainChatTemplate) return Plain(tokenizer.Encode, tokenizer.BosId != null, document, question);
        // Render with a placeholder user message to learn the template's opening and closing tokens.
        var shell = template.Encode(tokenizer, [ChatMessage.User("x")], addGenerationPrompt: true);
        var opening = shell.Ids.Take(shell.UserContentStart);
        var closing = shell.Ids.Skip(shell.UserContentEnd);
        var docIds = opening.Concat(tokenizer.Encode(document, addBos: false));
        var questionIds = tokenizer.Encode("\n\n" + question, addBos: false).Concat(closing);
        return new PromptLayout(ToLong(docIds), ToLong(questionIds), shell.UserContentStart);
    }

    /// <summary>No chat template: "document\nquestion" through <paramref name="encode"/> (text, addBos).</summary>
    public static PromptLayout Plain(Func<string, bool, IReadOnlyList<int>> encode, bool hasBos, string document, string question) =>
        new(ToLong(encode(document, hasBos)), ToLong(encode("\n" + question, false)), hasBos ? 1 : 0);

    /// <summary>
    /// A short prompt with no document (one user message): the whole prompt as <paramref name="template"/> renders it,
    /// for dense attention on one host. Dense is exact wherever the prompt is cut, so the cut only leaves Phase 2 a
    /// question part: the template's closing tokens (the assistant header), or the last token without a template.
    /// </summary>
    public static PromptLayout ShortPrompt(TextTokenizer tokenizer, ChatTemplate template, string prompt)
    {
        if (template is PlainChatTemplate) return PlainShortPrompt(tokenizer.Encode, tokenizer.BosId != null, prompt);
        var whole = template.Encode(tokenizer, [ChatMessage.User(prompt)], addGenerationPrompt: true);
        return Cut(whole.Ids, whole.UserContentEnd < whole.Ids.Count ? whole.UserContentEnd : whole.Ids.Count - 1, whole.UserContentStart);
    }

    /// <summary>No chat template: the prompt alone through <paramref name="encode"/> (BOS first when there is one).</summary>
    public static PromptLayout PlainShortPrompt(Func<string, bool, IReadOnlyList<int>> encode, bool hasBos, string prompt)
    {
        var ids = encode(prompt, hasBos);
        return Cut(ids, ids.Count - 1, hasBos ? 1 : 0);
    }

    private static PromptLayout Cut(IReadOnlyList<int> ids, int at, int offset) =>
        new(ToLong(ids.Take(Math.Max(at, 0))), ToLong(ids.Skip(Math.Max(at, 0))), offset);

    /// <summary>A document given as token ids (the caller's own, used as they are) with this layout's question part.</summary>
    public PromptLayout WithDocumentIds(IReadOnlyList<int> documentIds) => new(ToLong(documentIds), Question, 0);

    private static long[] ToLong(IEnumerable<int> ids) => ids.Select(i => (long)i).ToArray();
}
