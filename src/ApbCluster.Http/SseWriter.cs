using System.Text.Json;
using ApbCluster.Contracts;
using Microsoft.AspNetCore.Http;

namespace ApbCluster.Http;

/// <summary>
/// OpenAI-style server-sent events: "data: {chat.completion.chunk}" per token chunk, a last
/// chunk with finish_reason, then "data: [DONE]". Prefill progress goes out as SSE comments
/// (": prefill h0 3/32"), which clients ignore and proxies see as keep-alive traffic. With
/// stream_options.include_usage a chunk with no choices and the token counts comes before [DONE].
/// </summary>
internal sealed class SseWriter(HttpContext ctx, string queryId, string model, bool includeUsage)
{
    private readonly long _created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();

    public bool Started { get; private set; }

    public string Model => model;

    public async Task StartAsync()
    {
        Started = true;
        FrontDoorMetrics.Of(ctx).Request("chat", 200);
        ctx.Response.StatusCode = 200;
        ctx.Response.ContentType = "text/event-stream";
        ctx.Response.Headers.CacheControl = "no-cache";
        await DataAsync(Chunk(new ChatDelta("assistant", ""), null));
    }

    public Task TokensAsync(string text) => DataAsync(Chunk(new ChatDelta(null, text), null));

    public async Task CommentAsync(string text)
    {
        await ctx.Response.WriteAsync($": {text}\n\n", ctx.RequestAborted);
        await ctx.Response.Body.FlushAsync(ctx.RequestAborted);
    }

    public async Task FinishAsync(QueryCompleted done)
    {
        await DataAsync(Chunk(new ChatDelta(null, null), FinishReason(done.FinishReason)));
        if (includeUsage)
            await DataAsync(new ChatCompletion($"chatcmpl-{queryId}", "chat.completion.chunk", _created, model, [],
                new ChatUsage(done.PromptTokens, done.GeneratedTokens, done.PromptTokens + done.GeneratedTokens)));
        await DoneAsync();
    }

    /// <summary>After the status line is sent an error can only travel in the stream.</summary>
    public async Task ErrorAsync(OpenAiError error)
    {
        await DataAsync(error.Body);
        await DoneAsync();
    }

    /// <summary>OpenAI's vocabulary: "length" when max_tokens ran out, "stop" for a stop string or the end-of-sequence token.</summary>
    public static string FinishReason(Contracts.FinishReason reason) => reason.ToOpenAi();

    private ChatCompletion Chunk(ChatDelta delta, string? finish) =>
        new($"chatcmpl-{queryId}", "chat.completion.chunk", _created, model, [new ChatChoice(0, null, delta, finish)]);

    private async Task DataAsync(object payload)
    {
        await ctx.Response.WriteAsync($"data: {JsonSerializer.Serialize(payload, HttpResults.Json)}\n\n", ctx.RequestAborted);
        await ctx.Response.Body.FlushAsync(ctx.RequestAborted);
    }

    private async Task DoneAsync()
    {
        await ctx.Response.WriteAsync("data: [DONE]\n\n", ctx.RequestAborted);
        await ctx.Response.Body.FlushAsync(ctx.RequestAborted);
    }
}
