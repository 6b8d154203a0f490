namespace ApbCluster.Model.Tokenization;

/// <summary>
/// Qwen 2.5 Instruct's ChatML template (without tools): a system turn (the default one when the
/// conversation has none), then <c>&lt;|im_start|&gt;{role}\n{content}&lt;|im_end|&gt;\n</c> per message.
/// </summary>
public sealed class Qwen2ChatTemplate : ChatTemplate
{
    public const string ImStart = "<|im_start|>";
    public const string ImEnd = "<|im_end|>";
    public const string DefaultSystemPrompt = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";

    public override string Name => "qwen2";

    protected override IEnumerable<Segment> Segments(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt)
    {
        bool hasSystem = messages.Count > 0 && messages[0].Role == "system";
        if (!hasSystem) yield return new Segment(ImStart + "system\n" + DefaultSystemPrompt + ImEnd + "\n");
        foreach (var m in messages)
        {
            yield return new Segment(ImStart + m.Role + "\n");
            yield return new Segment(m.Content, IsUserContent: m.Role == "user");
            yield return new Segment(ImEnd + "\n");
        }
        if (addGenerationPrompt) yield return new Segment(ImStart + "assistant\n");
    }
}
