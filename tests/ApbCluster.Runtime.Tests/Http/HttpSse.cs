using System.Net.Http.Json;
using System.Text.Json.Nodes;

namespace ApbCluster.Runtime.Tests.Http;

/// <summary>Reads a server-sent-event response: the "data:" payloads in order (comments skipped).</summary>
public static class HttpSse
{
    public static async Task<List<string>> PostAsync(HttpClient http, object body, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = JsonContent.Create(body) };
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
        var text = await response.Content.ReadAsStringAsync(ct);
        if (!response.IsSuccessStatusCode) throw new InvalidOperationException($"{(int)response.StatusCode}: {text}");
        if (response.Content.Headers.ContentType?.MediaType != "text/event-stream") throw new InvalidOperationException($"not SSE: {text}");
        return text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries)
            .Where(e => e.StartsWith("data: ", StringComparison.Ordinal))
            .Select(e => e["data: ".Length..])
            .ToList();
    }

    /// <summary>The assistant text: every chunk's delta.content joined.</summary>
    public static string Content(IEnumerable<string> events) => string.Concat(events
        .Where(e => e != "[DONE]")
        .Select(e => JsonNode.Parse(e)!["choices"]?[0]?["delta"]?["content"]?.GetValue<string>() ?? ""));
}
