namespace ApbCluster.Model.Tokenization;

/// <summary>
/// Llama 3 Instruct's template as HF renders it without tools:
/// <c>&lt;|begin_of_text|&gt;&lt;|start_header_id|&gt;{role}&lt;|end_header_id|&gt;\n\n{content|trim}&lt;|eot_id|&gt;</c> per message.
/// Llama 3.1+ checkpoints ship a template that always opens with a system turn carrying the knowledge
/// cutoff and a date (its defaults: "December 2023", "26 Jul 2024"), followed by any system message;
/// <paramref name="withDateHeader"/> renders that form (detected from tokenizer_config.json's chat_template).
/// </summary>
public sealed class Llama3ChatTemplate(bool withDateHeader = false) : ChatTemplate
{
    public const string DateHeader = "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n";

    public const string BeginOfText = "<|begin_of_text|>";
    public const string StartHeader = "<|start_header_id|>";
    public const string EndHeader = "<|end_header_id|>";
    public const string EndOfTurn = "<|eot_id|>";

    public override string Name => withDateHeader ? "llama3.1" : "llama3";

    protected override IEnumerable<Segment> Segments(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt)
    {
        int first = 0;
        if (withDateHeader)
        {
            // The 3.1 template folds a leading system message into its own system turn.
            string system = messages.Count > 0 && messages[0].Role == "system" ? messages[0].Content.Trim() : "";
            if (messages.Count > 0 && messages[0].Role == "system") first = 1;
            yield return new Segment(BeginOfText + StartHeader + "system" + EndHeader + "\n\n" + DateHeader + system + EndOfTurn);
        }
        for (int i = first; i < messages.Count; i++)
        {
            var m = messages[i];
            yield return new Segment((i == 0 && !withDateHeader ? BeginOfText : "") + StartHeader + m.Role + EndHeader + "\n\n");
            // The official template trims each message's content (Jinja's |trim).
            yield return new Segment(m.Content.Trim(), IsUserContent: m.Role == "user");
            yield return new Segment(EndOfTurn);
        }
        if (addGenerationPrompt) yield return new Segment(StartHeader + "assistant" + EndHeader + "\n\n");
    }
}
