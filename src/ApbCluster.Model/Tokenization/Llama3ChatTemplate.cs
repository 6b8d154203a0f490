namespace ApbCluster.Model.Tokenization;

/// <summary>
/// Llama 3 Instruct's template as HF renders it without tools:
/// <c>&lt;|begin_of_text|&gt;&lt;|start_header_id|&gt;{role}&lt;|end_header_id|&gt;\n\n{content|trim}&lt;|eot_id|&gt;</c> per message.
/// Llama 3.1+ checkpoints ship a template that always opens with a system turn carrying the knowledge
/// cutoff and a date (its defaults: "December 2023", "26 Jul 2024"), followed by any system message;
/// <paramref name="withDateHeader"/> renders that form (detected from tokenizer_config.json's chat_template).
/// Llama 3.2's template writes today's date instead (strftime_now("%d %b %Y")): <paramref name="today"/>.
/// </summary>
public sealed class Llama3ChatTemplate(bool withDateHeader = false, DateOnly? today = null) : ChatTemplate
{
    /// <summary>The 3.1 template's date when the caller gives none.</summary>
    public const string DefaultDate = "26 Jul 2024";

    public const string DateHeader = "Cutting Knowledge Date: December 2023\nToday Date: " + DefaultDate + "\n\n";

    /// <summary>Python's strftime("%d %b %Y"): "02 Dec 2026".</summary>
    private string Header => today is { } d
        ? $"Cutting Knowledge Date: December 2023\nToday Date: {d.ToString("dd MMM yyyy", System.Globalization.CultureInfo.InvariantCulture)}\n\n"
        : DateHeader;

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
            string system = messages.Count > 0 && messages[0].Role == "system" ? PythonStrip.Strip(messages[0].Content) : "";
            if (messages.Count > 0 && messages[0].Role == "system") first = 1;
            yield return new Segment(BeginOfText + StartHeader + "system" + EndHeader + "\n\n" + Header + system + EndOfTurn);
        }
        for (int i = first; i < messages.Count; i++)
        {
            var m = messages[i];
            yield return new Segment((i == 0 && !withDateHeader ? BeginOfText : "") + StartHeader + m.Role + EndHeader + "\n\n");
            // The official template trims each message's content (Jinja's |trim, Python's str.strip).
            yield return new Segment(PythonStrip.Strip(m.Content), IsUserContent: m.Role == "user");
            yield return new Segment(EndOfTurn);
        }
        if (addGenerationPrompt) yield return new Segment(StartHeader + "assistant" + EndHeader + "\n\n");
    }
}
