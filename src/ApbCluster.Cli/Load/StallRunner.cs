using System.Diagnostics;
using ApbCluster.Client;
using ApbCluster.Contracts;

namespace ApbCluster.Cli.Load;

/// <summary>One stall trial as the client saw it, every time on one clock started when the running query was sent.</summary>
internal sealed record StallTrial(
    IReadOnlyList<double> TokenMs,
    double ArrivalMs,
    double? ArrivingFirstTokenMs,
    double? ArrivingDoneMs,
    string? Error,
    QueryCompleted? Running,
    QueryCompleted? Arriving)
{
    public bool Completed => Error is null;

    /// <summary>Null unless the running query was still decoding when the arriving one's first token came.</summary>
    public StallGaps? Gaps => Completed && ArrivingFirstTokenMs is { } end && TokenMs.Count > 0 && TokenMs[^1] > end
        ? StallGaps.Of(TokenMs, ArrivalMs, end) : null;

    /// <summary>The arriving query's time to first token, from its submission.</summary>
    public double? ArrivingTtftMs => ArrivingFirstTokenMs - ArrivalMs;
}

/// <summary>
/// How long a new prefill stalls a running decode: one query decodes many tokens; once it has streamed
/// <c>arriveAfter</c> of them, a query with a long document is sent; each token's arrival is timed on the client.
/// </summary>
internal sealed class StallRunner(ClusterQueryClient client, TimeSpan queryBound)
{
    public async Task<StallTrial> RunAsync(SubmitQuery running, SubmitQuery arriving, int arriveAfter, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        var tokenMs = new List<double>();
        var readyToArrive = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var first = Task.Run(() => ConsumeAsync(running, clock, (_, _) =>
        {
            tokenMs.Add(clock.Elapsed.TotalMilliseconds);
            if (tokenMs.Count == arriveAfter) readyToArrive.TrySetResult();
        }, ct), ct);
        var ended = await Task.WhenAny(readyToArrive.Task, first);
        if (ended == first)
        {
            var alone = await first;
            return new StallTrial(tokenMs, double.NaN, null, null,
                alone.Error ?? $"the running query ended after {tokenMs.Count} tokens, before --arrive-after {arriveAfter}{EndOfSequence(running, tokenMs.Count)}", null, null);
        }
        double arrivalMs = clock.Elapsed.TotalMilliseconds;
        double? firstTokenMs = null;
        var second = await ConsumeAsync(arriving, clock, (_, at) => firstTokenMs ??= at, ct);
        double arrivingDone = clock.Elapsed.TotalMilliseconds;
        var firstDone = await first;
        var error = firstDone.Error is { } e1 ? $"running query: {e1}" : second.Error is { } e2 ? $"arriving query: {e2}" : null;
        if (error is null && tokenMs[^1] <= firstTokenMs)
            error = $"the running query ended ({tokenMs.Count} tokens) before the arriving query's first token: " +
                    (tokenMs.Count < running.Generation.MaxNewTokens ? EndOfSequence(running, tokenMs.Count)[2..] : "raise --decode-tokens");
        return new StallTrial(tokenMs, arrivalMs, firstTokenMs, arrivingDone, error, firstDone.Done, second.Done);
    }

    private static string EndOfSequence(SubmitQuery running, int tokens) => tokens < running.Generation.MaxNewTokens
        ? "; the model chose an end-of-sequence token before --decode-tokens: try another --seed" : "";

    /// <summary>Streams one query, calling <paramref name="onToken"/> (id, client ms) for each token as it arrives.</summary>
    private async Task<(QueryCompleted? Done, string? Error)> ConsumeAsync(SubmitQuery query, Stopwatch clock, Action<int, double> onToken,
        CancellationToken ct)
    {
        using var bound = CancellationTokenSource.CreateLinkedTokenSource(ct);
        bound.CancelAfter(queryBound); // cancels the query on the cluster too
        string error = QueryEnding.NoAnswer;
        await foreach (var e in client.AskAsync(query, bound.Token))
        {
            switch (e)
            {
                case TokenChunk t:
                    foreach (var id in t.TokenIds) onToken(id, clock.Elapsed.TotalMilliseconds);
                    break;
                case QueryCompleted c:
                    return (c, null);
                default:
                    error = QueryEnding.Failure(e, bound.IsCancellationRequested && !ct.IsCancellationRequested, queryBound) ?? error;
                    break;
            }
        }
        return (null, error);
    }
}
