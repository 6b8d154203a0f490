using System.Text.Json;
using System.Text.Json.Serialization;

namespace ApbCluster.Http;

/// <summary>
/// The subset of OpenAI's chat completion request we read. Extensions: <c>context</c> (the long
/// document, instead of putting it in earlier messages), <c>mode</c> (apb, dense, ring, ulysses, star),
/// <c>prefill_attention</c> (full or critiprefill; default: the router's) and CritiPrefill's <c>criti_budget</c>,
/// <c>criti_segment</c>, <c>criti_block</c>, <c>criti_threshold</c> (default: the router's); <c>kv</c> (full or shadowkv;
/// default: the router's) and ShadowKV's <c>shadow_rank</c>, <c>shadow_chunk</c>, <c>shadow_budget</c>,
/// <c>shadow_outliers</c>, <c>shadow_local</c>, <c>shadow_values</c> (device or host) (default: the router's).
/// Content is kept as a JsonElement because OpenAI allows a string or an array of text parts.
/// </summary>
public sealed record ChatCompletionRequest(
    [property: JsonPropertyName("model")] string? Model,
    [property: JsonPropertyName("messages")] List<ChatMessageDto>? Messages,
    [property: JsonPropertyName("max_tokens")] int? MaxTokens,
    [property: JsonPropertyName("max_completion_tokens")] int? MaxCompletionTokens,
    [property: JsonPropertyName("temperature")] float? Temperature,
    [property: JsonPropertyName("top_p")] float? TopP,
    [property: JsonPropertyName("seed")] long? Seed,
    [property: JsonPropertyName("stop")] JsonElement? Stop,
    [property: JsonPropertyName("stream")] bool? Stream,
    [property: JsonPropertyName("context")] string? Context,
    [property: JsonPropertyName("mode")] string? Mode,
    [property: JsonPropertyName("prefill_attention")] string? PrefillAttention = null,
    [property: JsonPropertyName("criti_budget")] int? CritiBudget = null,
    [property: JsonPropertyName("criti_segment")] int? CritiSegment = null,
    [property: JsonPropertyName("criti_block")] int? CritiBlock = null,
    [property: JsonPropertyName("criti_threshold")] int? CritiThreshold = null,
    [property: JsonPropertyName("stream_options")] StreamOptions? StreamOptions = null,
    [property: JsonPropertyName("n")] int? N = null,
    [property: JsonPropertyName("logprobs")] bool? Logprobs = null,
    [property: JsonPropertyName("top_logprobs")] int? TopLogprobs = null,
    [property: JsonPropertyName("tools")] JsonElement? Tools = null,
    [property: JsonPropertyName("tool_choice")] JsonElement? ToolChoice = null,
    [property: JsonPropertyName("functions")] JsonElement? Functions = null,
    [property: JsonPropertyName("function_call")] JsonElement? FunctionCall = null,
    [property: JsonPropertyName("response_format")] JsonElement? ResponseFormat = null,
    [property: JsonPropertyName("logit_bias")] JsonElement? LogitBias = null,
    [property: JsonPropertyName("audio")] JsonElement? Audio = null,
    [property: JsonPropertyName("modalities")] JsonElement? Modalities = null,
    [property: JsonPropertyName("presence_penalty")] float? PresencePenalty = null,
    [property: JsonPropertyName("frequency_penalty")] float? FrequencyPenalty = null,
    [property: JsonPropertyName("kv")] string? Kv = null,
    [property: JsonPropertyName("shadow_rank")] int? ShadowRank = null,
    [property: JsonPropertyName("shadow_chunk")] int? ShadowChunk = null,
    [property: JsonPropertyName("shadow_budget")] int? ShadowBudget = null,
    [property: JsonPropertyName("shadow_outliers")] int? ShadowOutliers = null,
    [property: JsonPropertyName("shadow_local")] int? ShadowLocal = null,
    [property: JsonPropertyName("shadow_values")] string? ShadowValues = null);

/// <summary>stream_options: include_usage adds a last chunk with empty choices and the token counts.</summary>
public sealed record StreamOptions([property: JsonPropertyName("include_usage")] bool? IncludeUsage);

public sealed record ChatMessageDto(
    [property: JsonPropertyName("role")] string? Role,
    [property: JsonPropertyName("content")] JsonElement? Content);

public sealed record ChatCompletion(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("object")] string Object,
    [property: JsonPropertyName("created")] long Created,
    [property: JsonPropertyName("model")] string Model,
    [property: JsonPropertyName("choices")] IReadOnlyList<ChatChoice> Choices,
    [property: JsonPropertyName("usage"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] ChatUsage? Usage = null);

public sealed record ChatChoice(
    [property: JsonPropertyName("index")] int Index,
    [property: JsonPropertyName("message"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] ChatDelta? Message,
    [property: JsonPropertyName("delta"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] ChatDelta? Delta,
    [property: JsonPropertyName("finish_reason")] string? FinishReason);

public sealed record ChatDelta(
    [property: JsonPropertyName("role"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Role,
    [property: JsonPropertyName("content"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Content);

public sealed record ChatUsage(
    [property: JsonPropertyName("prompt_tokens")] int PromptTokens,
    [property: JsonPropertyName("completion_tokens")] int CompletionTokens,
    [property: JsonPropertyName("total_tokens")] int TotalTokens);

public sealed record ModelList(
    [property: JsonPropertyName("object")] string Object,
    [property: JsonPropertyName("data")] IReadOnlyList<ModelEntry> Data);

public sealed record ModelEntry(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("object")] string Object,
    [property: JsonPropertyName("created")] long Created,
    [property: JsonPropertyName("owned_by")] string OwnedBy);
