using System.Text.Json;

namespace ApbCluster.Http;

/// <summary>
/// OpenAI request parameters this server does not implement. A client that asks for several choices,
/// log probabilities, tool calls or a JSON-only answer would otherwise get an ordinary answer and
/// believe it got what it asked for, so each is refused with a 400 naming the parameter; their
/// no-op values (n 1, logprobs false, penalties 0, response_format text, tool_choice none) pass.
/// </summary>
internal static class UnsupportedParameters
{
    public static OpenAiError? Check(ChatCompletionRequest r)
    {
        if (r.N is { } n && n != 1) return Refuse("n", $"n = {n}: this server returns one choice per request");
        if (r.Logprobs == true || r.TopLogprobs is > 0) return Refuse(r.Logprobs == true ? "logprobs" : "top_logprobs", "log probabilities are not returned by this server");
        if (Present(r.Tools) || Present(r.Functions)) return Refuse(Present(r.Tools) ? "tools" : "functions", "tool and function calling is not supported");
        if (Present(r.ToolChoice) && !IsString(r.ToolChoice, "none")) return Refuse("tool_choice", "tool and function calling is not supported");
        if (Present(r.FunctionCall) && !IsString(r.FunctionCall, "none")) return Refuse("function_call", "tool and function calling is not supported");
        if (Present(r.ResponseFormat) && !(r.ResponseFormat!.Value.ValueKind == JsonValueKind.Object
                && r.ResponseFormat.Value.TryGetProperty("type", out var type) && type.ValueKind == JsonValueKind.String && type.GetString() == "text"))
            return Refuse("response_format", "structured output (json_object, json_schema) is not supported; only {\"type\":\"text\"}");
        if (Present(r.LogitBias) && !(r.LogitBias!.Value.ValueKind == JsonValueKind.Object && !r.LogitBias.Value.EnumerateObject().Any()))
            return Refuse("logit_bias", "logit_bias is not supported");
        if (Present(r.Audio) || Present(r.Modalities) && !OnlyText(r.Modalities!.Value)) return Refuse(Present(r.Audio) ? "audio" : "modalities", "only text output is supported");
        if (r.PresencePenalty is { } pp && pp != 0) return Refuse("presence_penalty", "presence_penalty is not supported (only 0)");
        if (r.FrequencyPenalty is { } fp && fp != 0) return Refuse("frequency_penalty", "frequency_penalty is not supported (only 0)");
        if (r.StreamOptions is not null && r.Stream != true)
            return OpenAiError.BadRequest("stream_options is only allowed with stream: true", "stream_options");
        return null;
    }

    private static OpenAiError Refuse(string param, string why) =>
        OpenAiError.BadRequest($"unsupported parameter '{param}': {why}", param, "unsupported_parameter");

    private static bool Present(JsonElement? e) => e is { ValueKind: not JsonValueKind.Null and not JsonValueKind.Undefined };

    private static bool IsString(JsonElement? e, string value) => e is { ValueKind: JsonValueKind.String } s && s.GetString() == value;

    private static bool OnlyText(JsonElement e) =>
        e.ValueKind == JsonValueKind.Array && e.EnumerateArray().All(m => m.ValueKind == JsonValueKind.String && m.GetString() == "text");
}
