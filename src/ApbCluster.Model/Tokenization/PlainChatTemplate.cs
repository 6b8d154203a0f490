namespace ApbCluster.Model.Tokenization;

/// <summary>
/// For base models without a chat format: the messages' contents one per line (document,
/// newline, question), after the tokenizer's BOS if it has one.
/// </summary>
public sealed class PlainChatTemplate : ChatTemplate
{
    public override string Name => "plain";

    protected override bool PrependBos => true;

    protected override IEnumerable<Segment> Segments(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt)
    {
        for (int i = 0; i < messages.Count; i++)
        {
            if (i > 0) yield return new Segment("\n");
            yield return new Segment(messages[i].Content, IsUserContent: messages[i].Role == "user");
        }
        // A base model continues the text; the only cue that an answer follows is a line break.
        if (addGenerationPrompt && messages.Count > 0) yield return new Segment("\n");
    }
}
