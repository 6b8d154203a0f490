using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
using ApbCluster.Contracts;

namespace ApbCluster.Http;

/// <summary>OpenAI's error body: {"error":{"message","type","param","code"}} with an HTTP status.</summary>
public sealed partial record OpenAiError(int Status, string Message, string Type, string? Param, string? Code)
{
    public object Body => new ErrorEnvelope(new ErrorDetail(Message, Type, Param, Code));

    /// <summary>The same error naming the request, so what a user quotes finds the node's log lines.</summary>
    public OpenAiError WithRequestId(string requestId) =>
        Message.EndsWith(")", StringComparison.Ordinal) && Message.Contains("(request id ", StringComparison.Ordinal) ? this
            : this with { Message = $"{Message} (request id {requestId})" };

    public static OpenAiError NotFound(string message, string code, string? param = null) =>
        new(404, message, "invalid_request_error", param, code);

    public static OpenAiError BadRequest(string message, string? param = null, string? code = null) =>
        new(400, message, "invalid_request_error", param, code);

    public static OpenAiError TooLarge(string message, string? param = null) =>
        new(413, message, "invalid_request_error", param, "context_length_exceeded");

    public static OpenAiError Busy(string message) => new(429, message, "rate_limit_error", null, "router_busy");

    public static OpenAiError Unavailable(string message, string code) => new(503, message, "server_error", null, code);

    public static OpenAiError Timeout(string message) => new(504, message, "server_error", null, "deadline_exceeded");

    /// <summary>
    /// Maps the router's QueryFailed to a status. The contract carries a reason text and no
    /// error code, so this reads the router's wording (QueryRouter, QueryValidation, QueryRun);
    /// anything unrecognised is a 500.
    /// </summary>
    public static OpenAiError FromFailure(QueryFailed failed)
    {
        var r = UserText(failed.Reason);
        if (failed.FailingHost is not null)
            return Unavailable($"host {failed.FailingHost} failed: {r}", "host_failed");
        if (r.Contains("no GPU hosts", StringComparison.OrdinalIgnoreCase))
            return Unavailable(r, "no_hosts");
        if (r.Contains("deadline", StringComparison.OrdinalIgnoreCase))
            return Timeout(r);
        if (r.Contains(" of KV on host ", StringComparison.Ordinal)) // too large for the cluster's memory, with the figures
            return TooLarge(r, "messages");
        if (r.Contains("exceeds the model's limit", StringComparison.OrdinalIgnoreCase))
            return BadRequest(r, "messages", "context_length_exceeded");
        string[] badInput = ["is empty", "outside", "unknown", "must", "no tokenizer", "already queued"];
        if (badInput.Any(w => r.Contains(w, StringComparison.OrdinalIgnoreCase)))
            return BadRequest(r);
        return new OpenAiError(500, "the query failed inside the cluster; the details are in the router node's log", "server_error", null, "query_failed");
    }

    /// <summary>
    /// The part of a router or host reason a user can act on: its first line (stack traces and native
    /// frames follow on later lines), without a leading .NET exception type name. The full text is logged.
    /// </summary>
    public static string UserText(string reason)
    {
        var line = reason.Split('\n', 2)[0].Trim();
        line = ExceptionPrefix().Replace(line, "");
        return line.Length <= 300 ? line : line[..300] + "...";
    }

    [GeneratedRegex(@"^([A-Za-z_][\w`]*\.)*[A-Za-z_]\w*(Exception|Error):\s*")]
    private static partial Regex ExceptionPrefix();

    private sealed record ErrorEnvelope([property: JsonPropertyName("error")] ErrorDetail Error);

    private sealed record ErrorDetail(
        [property: JsonPropertyName("message")] string Message,
        [property: JsonPropertyName("type")] string Type,
        [property: JsonPropertyName("param")] string? Param,
        [property: JsonPropertyName("code")] string? Code);
}
