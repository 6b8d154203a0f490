using ApbCluster.Model.Tokenization;

namespace ApbCluster.Parallel.Serving;

/// <summary>
/// How a (document, question) pair becomes APB's two token sequences. With a chat template the user
/// message is "document\n\nquestion": the document part is the template's opening tokens plus the
/// document; the question part is "\n\nquestion" plus the template's closing tokens (assistant header),
/// so Phase 2 ends exactly where generation starts. TemplateOffset is where the user content begins:
/// the anchor embeds the question there. Models without a template get "document\nquestion".
/// </summary>
public sealed record PromptLayout(long[] Document, long[] Question, int TemplateOffset)
{
    public static PromptLayout Build(TextTokenizer tokenizer, ChatTemplate template, string document, string question)
    {
        if (template is PlainChatTemplate)
        {
            var doc = tokenizer.Encode(document, addBos: tokenizer.BosId != null);
            var q = tokenizer.Encode("\n" + question, addBos: false);
            return new PromptLayout(ToLong(doc), ToLong(q), tokenizer.BosId != null ? 1 : 0);
        }
        // Render with a placeholder user message to learn the template's opening and closing tokens.
        var shell = template.Encode(tokenizer, [ChatMessage.User("x")], addGenerationPrompt: true);
        var opening = shell.Ids.Take(shell.UserContentStart);
        var closing = shell.Ids.Skip(shell.UserContentEnd);
        var docIds = opening.Concat(tokenizer.Encode(document, addBos: false));
        var questionIds = tokenizer.Encode("\n\n" + question, addBos: false).Concat(closing);
        return new PromptLayout(ToLong(docIds), ToLong(questionIds), shell.UserContentStart);
    }

    private static long[] ToLong(IEnumerable<int> ids) => ids.Select(i => (long)i).ToArray();
}
