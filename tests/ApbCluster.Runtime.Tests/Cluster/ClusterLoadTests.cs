using System.Diagnostics;
using ApbCluster.Client;
using ApbCluster.Contracts;
using ApbCluster.Runtime.Tests.Engine;

namespace ApbCluster.Runtime.Tests.Cluster;

/// <summary>
/// Load on a real loopback cluster (a router and 2 gpu-host node processes, random:tiny:7): 5
/// ClusterQueryClient instances submit 10 short queries each (~300-token context, 3 new tokens), all at once (50 in flight). None may be lost
/// (exactly one terminal event each), none duplicated (chunk indexes 0..k-1, no event after the terminal),
/// and each is answered (QueryCompleted) or refused with RouterBusy. With a router queue of 2 most are
/// refused; with 64 all complete.
/// </summary>
[Collection(LoopbackClusterCollection.Name)]
public sealed class ClusterLoadTests
{
    private const int Clients = 5;
    private const int PerClient = 10;
    private const int MaxNew = 3;
    private static readonly TimeSpan LoadBound = TimeSpan.FromSeconds(60);

    [Theory]
    [InlineData(2, false)] // queue of 2: RouterBusy must actually happen
    [InlineData(64, true)] // queue larger than the load: every query completes
    public async Task Fifty_queries_from_five_clients_are_each_answered_or_refused_busy_exactly_once(int queueCapacity, bool allComplete)
    {
        var ct = TestContext.Current.CancellationToken;
        var output = TestContext.Current.TestOutputHelper!;
        var boot = Stopwatch.StartNew();
        using var cluster = await LoopbackCluster.StartAsync(hostNodes: 2,
            new Dictionary<string, string> { ["APB_ROUTER_QUEUE"] = queueCapacity.ToString() }, ct: ct);
        output.WriteLine($"cluster ready in {boot.Elapsed.TotalSeconds:0.0}s: hosts {string.Join(", ", cluster.HostIds)}");

        var clients = Enumerable.Range(0, Clients).Select(_ => cluster.Connect(idleTimeout: LoadBound)).ToList();
        try
        {
            var late = clients.Select(LateEvents.Attach).ToList();
            // One warm-up query so the first measured one does not pay JIT and model load on the hosts.
            var (warm, _) = await clients[0].AskToEndAsync(Query("warm-up"), ct);
            Assert.True(warm is QueryCompleted, $"warm-up: {warm}\n{cluster.Outputs()}");

            var load = Stopwatch.StartNew();
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(LoadBound);
            var runs = clients.SelectMany((client, c) => Enumerable.Range(0, PerClient).Select(i =>
                Collect(client, Query($"load-{queueCapacity}-c{c}-q{i}"), timeout.Token))).ToList();
            var results = await Task.WhenAll(runs);
            var elapsed = load.Elapsed;
            await Task.Delay(1000, ct); // let any duplicate or late event arrive

            // None lost, none duplicated.
            Assert.Equal(Clients * PerClient, results.Length);
            Assert.Equal(results.Length, results.Select(r => r.Id).Distinct().Count());
            foreach (var (id, events) in results)
            {
                Assert.All(events, e => Assert.Equal(id, ((IQueryMessage)e).QueryId));
                var terminals = events.Where(IsTerminal).ToList();
                Assert.True(terminals.Count == 1, $"{id}: {terminals.Count} terminal events: {string.Join(", ", terminals)}");
                Assert.True(IsTerminal(events[^1]), $"{id}: the terminal event is not the last");
                var indexes = events.OfType<TokenChunk>().Select(t => t.Index).ToList();
                Assert.Equal(Enumerable.Range(0, indexes.Count), indexes);
                switch (events[^1])
                {
                    case QueryCompleted done:
                        Assert.Equal(done.GeneratedTokens, events.OfType<TokenChunk>().Sum(t => t.TokenIds.Count));
                        Assert.True(done.GeneratedTokens is > 0 and <= MaxNew, $"{id}: {done.GeneratedTokens} tokens");
                        Assert.Single(events.OfType<QueryAccepted>());
                        break;
                    case RouterBusy busy:
                        Assert.Equal(queueCapacity, busy.QueueCapacity);
                        Assert.Single(events); // refused at admission: nothing else was sent
                        break;
                    default:
                        Assert.Fail($"{id} ended with {events[^1]}\n{cluster.Outputs()}");
                        break;
                }
            }
            var lateEvents = late.SelectMany(l => { lock (l) return l.ToList(); }).ToList();
            Assert.True(lateEvents.Count == 0, $"events after a query's terminal event: {string.Join(", ", lateEvents.Take(10))}");

            var completed = results.Count(r => r.Events[^1] is QueryCompleted);
            var busyCount = results.Count(r => r.Events[^1] is RouterBusy);
            output.WriteLine($"queue {queueCapacity}: {results.Length} queries from {Clients} clients in {elapsed.TotalSeconds:0.0}s: " +
                             $"{completed} completed, {busyCount} RouterBusy, 0 lost, 0 duplicated");
            Assert.Equal(results.Length, completed + busyCount);
            if (allComplete) Assert.Equal(results.Length, completed);
            else
            {
                Assert.True(busyCount > 0, "a queue of 2 under 50 concurrent queries refused none");
                Assert.True(completed >= 1 + queueCapacity, $"only {completed} completed"); // the running one and the queued ones
            }

            // The router is idle again and a normal query still works.
            var status = await clients[0].StatusAsync(TimeSpan.FromSeconds(5));
            Assert.Equal((0, 0), (status.QueueDepth, status.InFlight));
            var (after, _) = await clients[0].AskToEndAsync(Query($"after-load-{queueCapacity}"), ct);
            Assert.True(after is QueryCompleted, $"after the load: {after}\n{cluster.Outputs()}");
            Assert.True(cluster.AllRunning, cluster.Outputs());
        }
        finally
        {
            foreach (var client in clients) await client.DisposeAsync();
        }
    }

    private static bool IsTerminal(object e) => e is QueryCompleted or QueryFailed or QueryCancelled or RouterBusy;

    private static SubmitQuery Query(string id) =>
        new(id, QueryContext.FromText(InProcessReference.Context(6)), " How many marbles?", GenerationOptions.Greedy(MaxNew), AttentionMode.Apb, null);

    private static async Task<(string Id, List<object> Events)> Collect(ClusterQueryClient client, SubmitQuery query, CancellationToken ct)
    {
        var events = new List<object>();
        await foreach (var e in client.AskAsync(query, ct)) events.Add(e);
        return (query.QueryId, events);
    }
}
