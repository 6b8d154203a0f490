using System.Text.Json;
using System.Threading.Channels;
using Akka.Actor;
using Akka.Event;
using ApbCluster.Contracts;
using ApbCluster.Runtime.Config;
using ApbCluster.Runtime.Metrics;
using Microsoft.AspNetCore.Http;

namespace ApbCluster.Http;

/// <summary>
/// POST /v1/chat/completions. Validates and maps the request, refuses past the concurrency
/// limit (429), then runs it through a <see cref="QueryStreamActor"/>. The first router reply
/// decides the status (busy 429, failure 4xx/5xx) before any byte of a stream is sent; after
/// that, stream: true sends server-sent events ending in "data: [DONE]".
/// </summary>
internal sealed class ChatCompletionsHandler(ActorSystem system, IActorRef router, IActorRef? routerWatch, OpsSettings settings)
{
    private const string Route = "chat";
    private readonly SemaphoreSlim _slots = new(settings.MaxConcurrentQueries, settings.MaxConcurrentQueries);
    private readonly ILoggingAdapter _log = Logging.GetLogger(system, "http");

    public async Task HandleAsync(HttpContext ctx)
    {
        ChatCompletionRequest? request;
        try
        {
            request = await JsonSerializer.DeserializeAsync<ChatCompletionRequest>(ctx.Request.Body, HttpResults.Json, ctx.RequestAborted);
        }
        catch (JsonException e)
        {
            await HttpResults.Error(ctx, OpenAiError.BadRequest($"the body is not valid JSON for a chat completion: {e.Message}"), Route);
            return;
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            await HttpResults.Error(ctx, OpenAiError.TooLarge($"the request body is larger than this server accepts (apb.limits.max-context-chars = {settings.MaxContextChars})"), Route);
            return;
        }

        var queryId = $"http-{Guid.NewGuid():N}"[..21];
        var (query, stream, error) = ChatRequestMapper.Map(request, queryId, settings);
        if (error is not null)
        {
            ApbMetrics.QueryRefused("rejected");
            await HttpResults.Error(ctx, error, Route);
            return;
        }
        if (!_slots.Wait(0))
        {
            ApbMetrics.QueryRefused("busy");
            await HttpResults.Error(ctx, new OpenAiError(429, $"this server runs at most {settings.MaxConcurrentQueries} queries at once (apb.limits.max-concurrent-queries); retry later",
                "rate_limit_error", null, "too_many_requests"), Route);
            return;
        }
        try
        {
            // Lengths only: prompt text never goes to the log.
            _log.Info("http query {0}: {1} context chars, question {2} chars, max_tokens {3}, stream {4}",
                queryId, query!.Context.Text!.Length, query.Question.Length, query.Generation.MaxNewTokens, stream);
            await RunAsync(ctx, query, request!.Model, stream);
        }
        finally
        {
            _slots.Release();
        }
    }

    private async Task RunAsync(HttpContext ctx, SubmitQuery query, string? model, bool stream)
    {
        var (routerNode, unavailable) = await RouterFailover.AdmitAsync(routerWatch, settings.RouterWait, ctx.RequestAborted);
        if (unavailable is not null)
        {
            await HttpResults.Error(ctx, unavailable, Route);
            return;
        }
        var replies = Channel.CreateUnbounded<IQueryMessage>(new UnboundedChannelOptions { SingleReader = true });
        var actor = system.ActorOf(QueryStreamActor.Props(router, query, replies.Writer, routerWatch, routerNode), query.QueryId);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ctx.RequestAborted);
        deadline.CancelAfter(settings.RequestTimeout);
        var sse = new SseWriter(ctx, query.QueryId, model ?? ModelsHandler.FallbackModel);
        try
        {
            await foreach (var reply in replies.Reader.ReadAllAsync(deadline.Token))
            {
                switch (reply)
                {
                    case RouterBusy busy:
                        await HttpResults.Error(ctx, OpenAiError.Busy($"the router's queue is full ({busy.QueueDepth}/{busy.QueueCapacity}); retry later"), Route);
                        return;
                    case QueryFailed failed when !sse.Started:
                        await HttpResults.Error(ctx, OpenAiError.FromFailure(failed), Route);
                        return;
                    case QueryFailed failed:
                        await sse.ErrorAsync(OpenAiError.FromFailure(failed));
                        return;
                    case RouterUnavailable lost when !sse.Started:
                        await HttpResults.Error(ctx, RouterFailover.Lost(lost), Route);
                        return;
                    case RouterUnavailable lost:
                        await sse.ErrorAsync(RouterFailover.Lost(lost));
                        return;
                    case QueryCancelled cancelled when !sse.Started:
                        await HttpResults.Error(ctx, RouterFailover.Cancelled(cancelled), Route);
                        return;
                    case QueryCancelled cancelled:
                        await sse.ErrorAsync(RouterFailover.Cancelled(cancelled));
                        return;
                    case QueryCompleted done when stream:
                        if (!sse.Started) await sse.StartAsync();
                        await sse.FinishAsync(done);
                        return;
                    case QueryCompleted done:
                        await HttpResults.Ok(ctx, Completion(query.QueryId, sse.Model, done), Route);
                        return;
                    case TokenChunk chunk when stream:
                        if (!sse.Started) await sse.StartAsync();
                        await sse.TokensAsync(chunk.Text);
                        break;
                    case QueryAccepted or PrefillProgress when stream:
                        if (!sse.Started) await sse.StartAsync();
                        await sse.CommentAsync(reply is PrefillProgress p ? $"prefill {p.Host} {p.Layer}/{p.Layers}" : "accepted");
                        break;
                }
            }
        }
        catch (OperationCanceledException) when (!ctx.RequestAborted.IsCancellationRequested)
        {
            var timeout = OpenAiError.Timeout($"no answer within {settings.RequestTimeout.TotalSeconds:0}s (apb.limits.request-timeout); the query was cancelled");
            if (sse.Started) await sse.ErrorAsync(timeout);
            else await HttpResults.Error(ctx, timeout, Route);
        }
        catch (OperationCanceledException)
        {
            _log.Info("http query {0}: client went away, cancelling", query.QueryId);
        }
        finally
        {
            system.Stop(actor); // cancels the query when it has not finished
        }
    }

    private static ChatCompletion Completion(string id, string model, QueryCompleted done) =>
        new($"chatcmpl-{id}", "chat.completion", DateTimeOffset.UtcNow.ToUnixTimeSeconds(), model,
            [new ChatChoice(0, new ChatDelta("assistant", done.Answer), null, SseWriter.FinishReason(done.FinishReason))],
            new ChatUsage(done.PromptTokens, done.GeneratedTokens, done.PromptTokens + done.GeneratedTokens));
}
