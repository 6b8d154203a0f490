namespace ApbCluster.Model.Tokenization;

/// <summary>
/// Llama 3 / 3.1 Instruct's template as HF renders it without tools or date header:
/// <c>&lt;|begin_of_text|&gt;&lt;|start_header_id|&gt;{role}&lt;|end_header_id|&gt;\n\n{content|trim}&lt;|eot_id|&gt;</c> per message.
/// </summary>
public sealed class Llama3ChatTemplate : ChatTemplate
{
    public const string BeginOfText = "<|begin_of_text|>";
    public const string StartHeader = "<|start_header_id|>";
    public const string EndHeader = "<|end_header_id|>";
    public const string EndOfTurn = "<|eot_id|>";

    public override string Name => "llama3";

    protected override IEnumerable<Segment> Segments(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt)
    {
        for (int i = 0; i < messages.Count; i++)
        {
            var m = messages[i];
            yield return new Segment((i == 0 ? BeginOfText : "") + StartHeader + m.Role + EndHeader + "\n\n");
            // The official template trims each message's content (Jinja's |trim).
            yield return new Segment(m.Content.Trim(), IsUserContent: m.Role == "user");
            yield return new Segment(EndOfTurn);
        }
        if (addGenerationPrompt) yield return new Segment(StartHeader + "assistant" + EndHeader + "\n\n");
    }
}
