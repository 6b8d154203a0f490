using System.Diagnostics;
using ApbCluster.Client;
using ApbCluster.Contracts;

namespace ApbCluster.Cli.Load;

/// <summary>
/// Sends a load run's queries through one <see cref="ClusterQueryClient"/>, at most <c>concurrency</c> in flight,
/// timing each from its submission (time to first token, total) and keeping the router's clock from its answer.
/// </summary>
internal sealed class LoadRunner(ClusterQueryClient client, TimeSpan queryBound)
{
    public async Task<LoadResult[]> RunAsync(IReadOnlyList<SubmitQuery> queries, int concurrency, CancellationToken ct)
    {
        using var slots = new SemaphoreSlim(concurrency);
        var runs = queries.Select(async (query, index) =>
        {
            await slots.WaitAsync(ct);
            try { return await OneAsync(index, query, ct); }
            finally { slots.Release(); }
        });
        return await Task.WhenAll(runs);
    }

    private async Task<LoadResult> OneAsync(int index, SubmitQuery query, CancellationToken ct)
    {
        using var bound = CancellationTokenSource.CreateLinkedTokenSource(ct);
        bound.CancelAfter(queryBound); // cancels the query on the cluster too
        var clock = Stopwatch.StartNew();
        double? firstToken = null;
        var ids = new List<int>();
        string error = "the cluster ended the query without an answer";
        await foreach (var e in client.AskAsync(query, bound.Token))
        {
            switch (e)
            {
                case TokenChunk t:
                    if (t.TokenIds.Count > 0) firstToken ??= clock.Elapsed.TotalMilliseconds;
                    ids.AddRange(t.TokenIds);
                    break;
                case QueryCompleted c:
                    return new LoadResult(index, query.QueryId, null, firstToken, clock.Elapsed.TotalMilliseconds, c.TokenIds ?? ids,
                        c.Timings.QueueMs, c.Clock);
                case QueryFailed f:
                    error = $"failed{(f.FailingHost is null ? "" : " on " + f.FailingHost)}: {f.Reason}";
                    break;
                case RouterBusy b:
                    error = $"refused: the router's queue is full ({b.QueueDepth} of {b.QueueCapacity})";
                    break;
                case QueryCancelled:
                    error = bound.IsCancellationRequested && !ct.IsCancellationRequested
                        ? $"no answer within {queryBound.TotalSeconds:0} s (--query-timeout); cancelled" : "cancelled";
                    break;
            }
        }
        return new LoadResult(index, query.QueryId, error, firstToken, clock.Elapsed.TotalMilliseconds, ids, null, null);
    }
}
