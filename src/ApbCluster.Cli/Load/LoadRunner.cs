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
        string error = QueryEnding.NoAnswer;
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
                default:
                    error = QueryEnding.Failure(e, bound.IsCancellationRequested && !ct.IsCancellationRequested, queryBound) ?? error;
                    break;
            }
        }
        return new LoadResult(index, query.QueryId, error, firstToken, clock.Elapsed.TotalMilliseconds, ids, null, null);
    }
}
