using System.Text;
using System.Text.Json;
using ApbCluster.Contracts;

namespace ApbCluster.Http;

/// <summary>
/// OpenAI chat request -> SubmitQuery. The last message must be the user's question; the long
/// document is the <c>context</c> field when given, else every earlier message (system first
/// as written) joined by blank lines. A lone user message is a short prompt on its own: it runs
/// dense on one host. Limits are checked here so the router never sees them, and parameters we do
/// not implement are refused (<see cref="UnsupportedParameters"/>) rather than silently ignored.
/// </summary>
public static class ChatRequestMapper
{
    private static readonly string[] Roles = ["system", "developer", "user", "assistant", "tool"];
    private const int DefaultMaxTokens = 256;

    public static (SubmitQuery? Query, bool Stream, OpenAiError? Error) Map(ChatCompletionRequest? request, string queryId, HttpSettings limits)
    {
        if (request is null) return Fail(OpenAiError.BadRequest("the request body must be a JSON object"));
        if (UnsupportedParameters.Check(request) is { } unsupported) return Fail(unsupported);
        if (request.Messages is not { Count: > 0 } messages)
            return Fail(OpenAiError.BadRequest("'messages' must be a non-empty array", "messages"));

        var texts = new List<string>(messages.Count);
        for (var i = 0; i < messages.Count; i++)
        {
            var m = messages[i];
            if (m is null || m.Role is null || !Roles.Contains(m.Role))
                return Fail(OpenAiError.BadRequest($"messages[{i}].role must be one of {string.Join(", ", Roles)}", $"messages[{i}].role"));
            if (ContentText(m.Content) is not { } text)
                return Fail(OpenAiError.BadRequest($"messages[{i}].content must be a string or an array of text parts", $"messages[{i}].content"));
            texts.Add(text);
        }
        if (messages[^1].Role != "user" || texts[^1].Trim().Length == 0)
            return Fail(OpenAiError.BadRequest("the last message must be a non-empty user message (the question)", "messages"));

        var context = request.Context ?? string.Join("\n\n", texts.Take(texts.Count - 1).Where(t => t.Length > 0));
        var shortPrompt = context.Trim().Length == 0;
        if (context.Length > limits.MaxContextChars)
            return Fail(OpenAiError.TooLarge(
                $"the document has {context.Length} characters; this server accepts at most {limits.MaxContextChars} (apb.limits.max-context-chars)",
                request.Context is null ? "messages" : "context"));

        var maxTokens = request.MaxCompletionTokens ?? request.MaxTokens ?? Math.Min(DefaultMaxTokens, limits.MaxNewTokens);
        if (maxTokens < 1 || maxTokens > limits.MaxNewTokens)
            return Fail(OpenAiError.BadRequest($"max_tokens must be from 1 to {limits.MaxNewTokens} (apb.limits.max-new-tokens), not {maxTokens}", "max_tokens"));
        var temperature = request.Temperature ?? 0f;
        if (float.IsNaN(temperature) || temperature is < 0 or > 2)
            return Fail(OpenAiError.BadRequest("temperature must be from 0 to 2", "temperature"));
        var topP = request.TopP ?? 1f;
        if (float.IsNaN(topP) || topP is <= 0 or > 1)
            return Fail(OpenAiError.BadRequest("top_p must be in (0, 1]", "top_p"));
        if (StopStrings(request.Stop) is not { } stops)
            return Fail(OpenAiError.BadRequest("stop must be a string or an array of at most 4 non-empty strings", "stop"));
        if (ParseMode(request.Mode) is not { } mode)
            return Fail(OpenAiError.BadRequest($"mode must be one of {string.Join(", ", Enum.GetNames<AttentionMode>().Select(n => n.ToLowerInvariant()))}", "mode"));

        var (prefillAttention, attentionError) = PrefillAttention(request, mode);
        if (attentionError is not null) return Fail(attentionError);
        var (kvStore, kvError) = KvStore(request);
        if (kvError is not null) return Fail(kvError);
        if (shortPrompt && request.Mode is not null && mode != AttentionMode.Dense)
            return Fail(OpenAiError.BadRequest($"mode {request.Mode} splits a long document across hosts, and this request has none; "
                + "give it in the 'context' field or earlier messages, or leave mode out", "mode"));

        // Without a document the question is the whole prompt: an empty context asks the router for
        // the short-prompt path (the prompt rendered alone, dense on one host).
        var query = shortPrompt
            ? new SubmitQuery(queryId, QueryContext.FromText(""), texts[^1],
                new GenerationOptions(maxTokens, temperature, topP, request.Seed, stops), AttentionMode.Dense, null, PrefillAttention: prefillAttention, KvStore: kvStore)
            : new SubmitQuery(queryId, QueryContext.FromText(context), texts[^1],
                new GenerationOptions(maxTokens, temperature, topP, request.Seed, stops), mode, null, PrefillAttention: prefillAttention, KvStore: kvStore);
        return (query, request.Stream ?? false, null);
    }

    private static (SubmitQuery?, bool, OpenAiError?) Fail(OpenAiError error) => (null, false, error);

    /// <summary>A string, or an array of {"type":"text","text":...} parts (others refused); null = missing counts as "".</summary>
    private static string? ContentText(JsonElement? content)
    {
        if (content is not { } c || c.ValueKind == JsonValueKind.Null) return "";
        if (c.ValueKind == JsonValueKind.String) return c.GetString();
        if (c.ValueKind != JsonValueKind.Array) return null;
        var sb = new StringBuilder();
        foreach (var part in c.EnumerateArray())
        {
            if (part.ValueKind != JsonValueKind.Object || !part.TryGetProperty("type", out var type) || type.GetString() != "text"
                || !part.TryGetProperty("text", out var text) || text.ValueKind != JsonValueKind.String)
                return null;
            sb.Append(text.GetString());
        }
        return sb.ToString();
    }

    private static IReadOnlyList<string>? StopStrings(JsonElement? stop)
    {
        if (stop is not { } s || s.ValueKind == JsonValueKind.Null) return [];
        if (s.ValueKind == JsonValueKind.String) return s.GetString() is { Length: > 0 } one ? [one] : null;
        if (s.ValueKind != JsonValueKind.Array || s.GetArrayLength() > 4) return null;
        var list = s.EnumerateArray().Select(e => e.ValueKind == JsonValueKind.String ? e.GetString() ?? "" : "").ToList();
        return list.All(x => x.Length > 0) ? list : null;
    }

    /// <summary>prefill_attention and criti_*: null leaves it to the router. Parameters given are checked here as far as
    /// they go alone (the router fills the rest from its settings and checks the whole).</summary>
    private static (PrefillAttentionOptions?, OpenAiError?) PrefillAttention(ChatCompletionRequest r, AttentionMode mode)
    {
        var kind = r.PrefillAttention?.Trim().ToLowerInvariant() switch
        {
            null => PrefillAttentionKind.Default,
            "full" => PrefillAttentionKind.Full,
            "critiprefill" => PrefillAttentionKind.CritiPrefill,
            _ => (PrefillAttentionKind?)null,
        };
        if (kind is null) return (null, OpenAiError.BadRequest("prefill_attention must be full or critiprefill", "prefill_attention"));
        var given = new (string Name, int? Value)[] { ("criti_budget", r.CritiBudget), ("criti_segment", r.CritiSegment), ("criti_block", r.CritiBlock), ("criti_threshold", r.CritiThreshold) };
        if (given.FirstOrDefault(g => g.Value is not null && (g.Name == "criti_threshold" ? g.Value < 0 : g.Value <= 0)) is { Name: { } bad } b)
            return (null, OpenAiError.BadRequest($"{bad} {b.Value}: must be {(bad == "criti_threshold" ? "0 or more" : "positive")}", bad));
        if (kind == PrefillAttentionKind.Full && given.FirstOrDefault(g => g.Value is not null) is { Name: { } extra })
            return (null, OpenAiError.BadRequest($"{extra} applies with prefill_attention critiprefill", extra));
        if (kind == PrefillAttentionKind.CritiPrefill && mode is AttentionMode.Ring or AttentionMode.Ulysses)
            return (null, OpenAiError.BadRequest($"prefill_attention critiprefill runs with mode dense, apb or star, not {mode.ToString().ToLowerInvariant()}", "prefill_attention"));
        if (kind == PrefillAttentionKind.Default && given.All(g => g.Value is null)) return (null, null);
        return (new PrefillAttentionOptions(kind.Value, r.CritiBudget, r.CritiSegment, r.CritiBlock, r.CritiThreshold), null);
    }

    /// <summary>kv and shadow_*: null leaves it to the router. Parameters given are checked here as far as they go alone
    /// (the router fills the rest from its settings and checks the whole).</summary>
    private static (KvStoreOptions?, OpenAiError?) KvStore(ChatCompletionRequest r)
    {
        var kind = r.Kv?.Trim().ToLowerInvariant() switch
        {
            null => KvStoreKind.Default,
            "full" => KvStoreKind.Full,
            "shadowkv" => KvStoreKind.ShadowKv,
            _ => (KvStoreKind?)null,
        };
        if (kind is null) return (null, OpenAiError.BadRequest("kv must be full or shadowkv", "kv"));
        var given = new (string Name, int? Value)[]
        {
            ("shadow_rank", r.ShadowRank), ("shadow_chunk", r.ShadowChunk), ("shadow_budget", r.ShadowBudget),
            ("shadow_outliers", r.ShadowOutliers), ("shadow_local", r.ShadowLocal),
        };
        static bool MayBeZero(string name) => name is "shadow_outliers" or "shadow_local";
        if (given.FirstOrDefault(g => g.Value is not null && (MayBeZero(g.Name) ? g.Value < 0 : g.Value <= 0)) is { Name: { } bad } b)
            return (null, OpenAiError.BadRequest($"{bad} {b.Value}: must be {(MayBeZero(bad) ? "0 or more" : "positive")}", bad));
        bool? onHost = r.ShadowValues?.Trim().ToLowerInvariant() switch { null => null, "device" => false, "host" => true, _ => null };
        if (r.ShadowValues is not null && onHost is null)
            return (null, OpenAiError.BadRequest("shadow_values must be device or host", "shadow_values"));
        var extra = given.Where(g => g.Value is not null).Select(g => g.Name).Concat(r.ShadowValues is null ? [] : ["shadow_values"]).FirstOrDefault();
        if (kind == KvStoreKind.Full && extra is not null)
            return (null, OpenAiError.BadRequest($"{extra} applies with kv shadowkv", extra));
        if (kind == KvStoreKind.Default && extra is null) return (null, null);
        return (new KvStoreOptions(kind.Value, r.ShadowRank, r.ShadowChunk, r.ShadowBudget, r.ShadowOutliers, r.ShadowLocal, onHost), null);
    }

    private static AttentionMode? ParseMode(string? mode) =>
        mode is null ? AttentionMode.Apb : Enum.TryParse<AttentionMode>(mode, ignoreCase: true, out var m) && Enum.IsDefined(m) ? m : null;
}
