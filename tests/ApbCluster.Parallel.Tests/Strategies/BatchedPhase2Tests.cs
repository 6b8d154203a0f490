using ApbCluster.Model.Forward;
using ApbCluster.NativeInterop;
using ApbCluster.Parallel.Collectives;
using ApbCluster.Parallel.Compression;
using ApbCluster.Parallel.Phase2;
using ApbCluster.Parallel.Plan;
using ApbCluster.Parallel.Strategies;
using Xunit;
using static ApbCluster.Parallel.Tests.Strategies.StrategyFixture;

namespace ApbCluster.Parallel.Tests.Strategies;

/// <summary>
/// Phase 2 of several queries at once, each host batching the decode steps of the queries it runs
/// (<see cref="Phase2Options.Batcher"/>): every query's tokens equal the same query run alone, and queries spread over
/// the same hosts in different rank orders (the case a host-wide barrier per layer would deadlock) all finish.
/// </summary>
public class BatchedPhase2Tests
{
    public BatchedPhase2Tests() => TorchRuntime.EnsureLoaded("cpu");

    private sealed record Query(long[] Document, long[] Question, int[] HostOfRank);

    private static (HostShard, Phase2Result)[] RunQuery(Model.Layers.LlamaModel model, Query q, DecodeBatcher?[] hosts)
    {
        var plan = ApbPlan.Create(new PlanRequest
        {
            DocumentLength = q.Document.Length, QuestionLength = q.Question.Length, Hosts = q.HostOfRank.Length, TemplateOffset = 2,
        });
        return InProcessCollectiveGroup.Run(plan.Hosts, TimeSpan.FromMinutes(2), c => ParallelRun.Host(c, model, plan,
            new ApbStrategy(new QueryAwareCompressor()), new PrefillRequest(q.Document, q.Question),
            new Phase2Options { MaxNewTokens = 12, Batcher = hosts[q.HostOfRank[c.Rank]] }));
    }

    [Fact]
    public async Task Queries_over_shared_hosts_in_any_rank_order_decode_as_alone()
    {
        using var model = TinyModel(2, 3);
        model.Rope.EnsureCapacity(512); // the threads only read the table
        var rng = new Random(11);
        var queries = new[]
        {
            new Query(Tokens(rng, 60, 61), Tokens(rng, 3, 61), [0, 1]),
            new Query(Tokens(rng, 45, 61), Tokens(rng, 5, 61), [1, 0]),    // the same two hosts, the other way round
            new Query(Tokens(rng, 70, 61), Tokens(rng, 2, 61), [2, 0, 1]),
            new Query(Tokens(rng, 52, 61), Tokens(rng, 4, 61), [1, 2]),
        };
        var alone = queries.Select(q => RunQuery(model, q, new DecodeBatcher?[3])[^1].Item2.Tokens).ToArray();

        var hosts = Enumerable.Range(0, 3).Select(_ => (DecodeBatcher?)new DecodeBatcher()).ToArray();
        var runs = queries.Select(q => Task.Factory.StartNew(() => RunQuery(model, q, hosts), TaskCreationOptions.LongRunning)).ToArray();
        var results = await Task.WhenAll(runs).WaitAsync(TimeSpan.FromMinutes(3), TestContext.Current.CancellationToken);

        for (int i = 0; i < queries.Length; i++)
            Assert.All(results[i], r => Assert.Equal(alone[i], r.Item2.Tokens)); // every rank agrees with the query alone
        // How much got shared depends on how the threads meet (DecodeBatcherTests pins that down); here: the answers.
    }
}
