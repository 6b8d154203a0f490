using ApbCluster.Model.Config;

namespace ApbCluster.Model.Tokenization;

/// <summary>
/// A model family's chat template, written as code rather than Jinja. Templates produce
/// segments so that the user content's token offsets are known exactly.
/// </summary>
public abstract class ChatTemplate
{
    /// <summary>A piece of the rendered prompt; <paramref name="IsUserContent"/> marks a user message's content.</summary>
    protected readonly record struct Segment(string Text, bool IsUserContent = false);

    public abstract string Name { get; }

    /// <summary>Whether <see cref="Encode"/> prepends the tokenizer's BOS id (templates that write it as text do not).</summary>
    protected virtual bool PrependBos => false;

    protected abstract IEnumerable<Segment> Segments(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt);

    /// <summary>Llama 3 if the tokenizer has &lt;|start_header_id|&gt; (the 3.1 form when the checkpoint's own Jinja
    /// template, <paramref name="jinjaSource"/>, writes the knowledge-cutoff header), Qwen 2 if it has
    /// &lt;|im_start|&gt;, else plain text.</summary>
    public static ChatTemplate For(ModelConfig config, TextTokenizer tokenizer, string? jinjaSource = null)
    {
        bool llama = tokenizer.HasToken(Llama3ChatTemplate.StartHeader);
        bool qwen = tokenizer.HasToken(Qwen2ChatTemplate.ImStart);
        // Llama 3.2's template asks for today's date (strftime_now); 3.1's writes a fixed one.
        var today = jinjaSource?.Contains("strftime_now", StringComparison.Ordinal) == true ? DateOnly.FromDateTime(DateTime.Now) : (DateOnly?)null;
        var llamaTemplate = new Llama3ChatTemplate(jinjaSource?.Contains("Cutting Knowledge Date", StringComparison.Ordinal) == true, today);
        if (llama && qwen) return config.ModelType == "qwen2" ? new Qwen2ChatTemplate() : llamaTemplate;
        if (llama) return llamaTemplate;
        if (qwen) return new Qwen2ChatTemplate();
        return new PlainChatTemplate();
    }

    /// <summary>tokenizer_config.json's chat_template (a string, or the "default" of a list of named
    /// templates), or null when the folder has none.</summary>
    public static string? ReadJinja(string modelDir)
    {
        var path = Path.Combine(modelDir, SpecialTokenIds.TokenizerConfig);
        if (!File.Exists(path)) return null;
        using var json = JsonFile.Read(path);
        if (json.Get("chat_template") is not { } t) return null;
        if (t.ValueKind == System.Text.Json.JsonValueKind.String) return t.GetString();
        if (t.ValueKind != System.Text.Json.JsonValueKind.Array) return null;
        string? first = null;
        foreach (var entry in t.EnumerateArray())
        {
            if (entry.ValueKind != System.Text.Json.JsonValueKind.Object || !entry.TryGetProperty("template", out var body)) continue;
            first ??= body.GetString();
            if (entry.TryGetProperty("name", out var name) && name.GetString() == "default") return body.GetString();
        }
        return first;
    }

    /// <summary>The prompt text exactly as the official template renders it.</summary>
    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt) =>
        string.Concat(Segments(messages, addGenerationPrompt).Select(s => s.Text));

    /// <summary>
    /// Renders and tokenizes the prompt segment by segment (special tokens become their ids), and
    /// reports where the last user message's content lies in tokens.
    /// </summary>
    public TemplatedPrompt Encode(TextTokenizer tokenizer, IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt)
    {
        var ids = new List<int>();
        if (PrependBos && tokenizer.BosId is { } bos) ids.Add(bos);
        int start = -1, end = -1;
        foreach (var seg in Segments(messages, addGenerationPrompt))
        {
            if (seg.IsUserContent) start = ids.Count;
            ids.AddRange(tokenizer.Encode(seg.Text, addBos: false));
            if (seg.IsUserContent) end = ids.Count;
        }
        if (start < 0) start = end = ids.Count; // no user message: the content would go at the end
        return new TemplatedPrompt(Render(messages, addGenerationPrompt), ids, start, end);
    }
}
