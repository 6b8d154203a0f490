using Akka.Actor;
using Akka.TestKit;
using Akka.TestKit.Xunit;
using ApbCluster.Contracts;
using ApbCluster.Model.Config;
using ApbCluster.Runtime.Actors;
using ApbCluster.Engine;

namespace ApbCluster.Runtime.Tests.Actors;

/// <summary>The router's query path against probe hosts: planning, streaming, back-pressure, cancel, deadline, failures.</summary>
public sealed class QueryRunTests() : TestKit(ClusterTestConfig.Hocon)
{
    private static readonly ModelConfig Tiny = ModelShapes.Get("tiny");

    private static RouterSettings Settings(int queue = 4, double timeoutS = 30) => new()
    {
        QueueCapacity = queue,
        MaxInFlight = 1, // one at a time: these tests follow a single query through the hosts
        QueryTimeout = TimeSpan.FromSeconds(timeoutS),
        BlameGrace = TimeSpan.FromMilliseconds(300),
        Codec = new ByteTokenCodec(Tiny),
        Model = Tiny,
    };

    private static SubmitQuery Query(string id, string context = "The quick brown fox jumps over the lazy dog.", int maxNew = 4,
        AttentionMode mode = AttentionMode.Apb, IReadOnlyList<string>? stops = null) =>
        new(id, QueryContext.FromText(context), "Who jumps?", new Contracts.GenerationOptions(maxNew, 0, 1, null, stops ?? []), mode, null);

    private (IActorRef Router, TestProbe[] Hosts) RouterWithHosts(int hosts, RouterSettings? settings = null)
    {
        var router = Sys.ActorOf(QueryRouter.Props(settings ?? Settings()));
        var probes = Enumerable.Range(0, hosts).Select(_ => CreateTestProbe()).ToArray();
        for (int i = 0; i < hosts; i++)
        {
            router.Tell(new RegisterHost($"h{i}", probes[i].Ref, "cpu", 1L << 30, 64L << 30, "random:tiny:7", HostState.Ready, 0, $"127.0.0.1:{5000 + i}"), probes[i].Ref);
            probes[i].ExpectMsg<HostRegistered>();
        }
        return (router, probes);
    }

    [Theory]
    [InlineData(CompressorKind.Default, CompressorKind.QueryAware)]
    [InlineData(CompressorKind.Random, CompressorKind.Random)]
    [InlineData(CompressorKind.RetainingHeads, CompressorKind.RetainingHeads)]
    public void The_router_resolves_the_compressor_and_the_plan_summary_and_every_host_name_the_same_one(CompressorKind asked, CompressorKind runs)
    {
        var (router, hosts) = RouterWithHosts(2);
        router.Tell(Query("q1") with { Apb = new ApbOptions(2, 2, asked) });
        Assert.Equal(runs, ExpectMsg<QueryAccepted>().Plan.Compressor);
        Assert.All(hosts.Select(h => h.ExpectMsg<RunShard>()), r => Assert.Equal(runs, r.Work.Compressor));
    }

    [Fact]
    public void A_query_is_planned_in_ring_order_and_every_host_gets_its_rank_and_the_whole_prompt()
    {
        var (router, hosts) = RouterWithHosts(3);
        router.Tell(Query("q1"));
        var accepted = ExpectMsg<QueryAccepted>();
        Assert.Equal(["h0", "h1", "h2"], accepted.Plan.HostsInRingOrder);
        Assert.Equal(3, accepted.Plan.BlockLengths.Count);

        var runs = hosts.Select(h => h.ExpectMsg<RunShard>()).ToArray();
        Assert.Equal([0, 1, 2], runs.Select(r => r.Ring.Rank));
        var expectedDoc = new ByteTokenCodec(Tiny).Encode("The quick brown fox jumps over the lazy dog.", addBos: true);
        Assert.All(runs, r =>
        {
            Assert.Equal(3, r.Ring.WorldSize);
            Assert.Equal(["127.0.0.1:5000", "127.0.0.1:5001", "127.0.0.1:5002"], r.Ring.DataEndpoints);
            Assert.Equal(expectedDoc, r.Work.Document);
            Assert.Equal(accepted.Plan.AnchorLength, r.Work.Plan.AnchorLength);
            Assert.Equal(accepted.Plan.BlockLengths, r.Work.Plan.BlockLengths);
            Assert.Null(r.Ring.NcclUniqueId);
        });
    }

    [Fact]
    public void Progress_and_tokens_stream_to_the_caller_then_completion_with_timings()
    {
        var (router, hosts) = RouterWithHosts(2);
        router.Tell(Query("q1", maxNew: 2));
        ExpectMsg<QueryAccepted>();
        var runs = hosts.Select(h => h.ExpectMsg<RunShard>()).ToArray();
        var coordinator = runs[0].Coordinator;

        coordinator.Tell(new PrefillProgress("q1", "h0", 1, 4));
        Assert.Equal(1, ExpectMsg<PrefillProgress>().Layer);
        coordinator.Tell(new ShardTokens("q1", 0, [ByteTokenCodec.Offset + 'H']));
        var chunk = ExpectMsg<TokenChunk>();
        Assert.Equal(("q1", 0, "H"), (chunk.QueryId, chunk.Index, chunk.Text));
        coordinator.Tell(new ShardTokens("q1", 1, [ByteTokenCodec.Offset + 'i']));
        Assert.Equal("i", ExpectMsg<TokenChunk>().Text);
        coordinator.Tell(new ShardFinished("q1", "h0", 0, 10, 20, 2));
        ExpectNoMsg(TimeSpan.FromMilliseconds(200)); // waits for every host
        coordinator.Tell(new ShardFinished("q1", "h1", 1, 10, 20, 2));
        var done = ExpectMsg<QueryCompleted>();
        Assert.Equal(("Hi", FinishReason.Length, 2), (done.Answer, done.FinishReason, done.GeneratedTokens));
        Assert.True(done.Timings.TotalMs >= done.Timings.TimeToFirstTokenMs);
    }

    [Fact]
    public void A_stop_string_ends_the_query_early_and_stops_the_hosts()
    {
        var (router, hosts) = RouterWithHosts(1);
        router.Tell(Query("q1", maxNew: 10, mode: AttentionMode.Dense, stops: ["b"]));
        ExpectMsg<QueryAccepted>();
        var run = hosts[0].ExpectMsg<RunShard>();
        run.Coordinator.Tell(new ShardTokens("q1", 0, [ByteTokenCodec.Offset + 'a']));
        run.Coordinator.Tell(new ShardTokens("q1", 1, [ByteTokenCodec.Offset + 'b']));
        ExpectMsg<TokenChunk>();
        ExpectMsg<TokenChunk>();
        var done = ExpectMsg<QueryCompleted>();
        Assert.Equal(("a", FinishReason.Stop), (done.Answer, done.FinishReason));
        hosts[0].ExpectMsg<CancelQuery>();
    }

    [Fact]
    public void A_full_queue_answers_busy_and_the_queue_drains_in_order()
    {
        var (router, hosts) = RouterWithHosts(1, Settings(queue: 1));
        router.Tell(Query("running", mode: AttentionMode.Dense));
        ExpectMsg<QueryAccepted>();
        router.Tell(Query("waiting", mode: AttentionMode.Dense));
        router.Tell(Query("refused", mode: AttentionMode.Dense));
        var busy = ExpectMsg<RouterBusy>();
        Assert.Equal(("refused", 1, 1), (busy.QueryId, busy.QueueDepth, busy.QueueCapacity));

        router.Tell(GetClusterStatus.Instance);
        var status = ExpectMsg<ClusterStatus>();
        Assert.Equal((1, 1), (status.QueueDepth, status.InFlight));

        var first = hosts[0].ExpectMsg<RunShard>();
        first.Coordinator.Tell(new ShardFinished("running", "h0", 0, 1, 1, 0));
        Assert.Equal("running", ExpectMsg<QueryCompleted>().QueryId);
        Assert.Equal("waiting", ExpectMsg<QueryAccepted>().QueryId);
        Assert.Equal("waiting", hosts[0].ExpectMsg<RunShard>().QueryId);
    }

    [Fact]
    public void Cancel_tells_every_host_to_free_the_query_and_the_caller_gets_cancelled()
    {
        var (router, hosts) = RouterWithHosts(2);
        router.Tell(Query("q1"));
        ExpectMsg<QueryAccepted>();
        foreach (var h in hosts) h.ExpectMsg<RunShard>();
        router.Tell(new CancelQuery("q1"));
        ExpectMsg<QueryCancelled>();
        foreach (var h in hosts) Assert.Equal("q1", h.ExpectMsg<CancelQuery>().QueryId);
    }

    [Fact]
    public void A_query_past_its_deadline_fails_and_frees_the_hosts()
    {
        var (router, hosts) = RouterWithHosts(2, Settings(timeoutS: 0.5));
        router.Tell(Query("q1"));
        ExpectMsg<QueryAccepted>();
        var failed = ExpectMsg<QueryFailed>(TimeSpan.FromSeconds(5));
        Assert.Contains("deadline", failed.Reason);
        foreach (var h in hosts)
        {
            h.ExpectMsg<RunShard>();
            h.ExpectMsg<CancelQuery>();
        }
    }

    [Fact]
    public void A_hosts_own_error_fails_the_query_naming_it()
    {
        var (router, hosts) = RouterWithHosts(3);
        router.Tell(Query("q1"));
        ExpectMsg<QueryAccepted>();
        var run = hosts[1].ExpectMsg<RunShard>();
        run.Coordinator.Tell(new ShardFailed("q1", "h1", "host h1: OutOfMemoryException: CUDA out of memory", "h1", false));
        var failed = ExpectMsg<QueryFailed>();
        Assert.Equal("h1", failed.FailingHost);
        Assert.Contains("out of memory", failed.Reason);
    }

    [Fact]
    public void A_data_plane_failure_blames_the_host_that_never_reported()
    {
        var (router, hosts) = RouterWithHosts(3);
        router.Tell(Query("q1"));
        ExpectMsg<QueryAccepted>();
        var coordinator = hosts[0].ExpectMsg<RunShard>().Coordinator;
        coordinator.Tell(new PrefillProgress("q1", "h0", 1, 4)); // the work had begun: no replanning
        ExpectMsg<PrefillProgress>();
        // h2 died: h0 saw h1 close first (h1 aborted), h1 saw h2 vanish; h2 says nothing.
        coordinator.Tell(new ShardFailed("q1", "h0", "AllGather: rank 1 closed", "h1", true));
        coordinator.Tell(new ShardFailed("q1", "h1", "AllGather: rank 2 closed", "h2", true));
        var failed = ExpectMsg<QueryFailed>();
        Assert.Equal("h2", failed.FailingHost);
        Assert.Contains("h2", failed.Reason);
    }

    [Fact]
    public void A_host_actor_that_dies_mid_query_fails_it_naming_the_host()
    {
        var (router, hosts) = RouterWithHosts(2);
        router.Tell(Query("q1"));
        ExpectMsg<QueryAccepted>();
        hosts[1].ExpectMsg<RunShard>().Coordinator.Tell(new PrefillProgress("q1", "h1", 1, 4));
        ExpectMsg<PrefillProgress>();
        Sys.Stop(hosts[1].Ref);
        Assert.Equal("h1", ExpectMsg<QueryFailed>().FailingHost);
    }

    [Fact]
    public void A_host_found_dead_before_the_work_began_is_left_out_and_the_query_planned_again_once()
    {
        var (router, hosts) = RouterWithHosts(3);
        router.Tell(Query("q1"));
        Assert.Equal(["h0", "h1", "h2"], ExpectMsg<QueryAccepted>().Plan.HostsInRingOrder);
        hosts[2].ExpectMsg<RunShard>();
        Sys.Stop(hosts[2].Ref); // planned in the moment between its death and the router hearing of it
        Assert.Equal(["h0", "h1"], ExpectMsg<QueryAccepted>().Plan.HostsInRingOrder);
        hosts[1].FishForMessage(m => m is RunShard { Ring.WorldSize: 2 }); // after the first run's RunShard and its cancel
        // A second loss before the work began is told to the caller: the query is not replanned forever.
        Sys.Stop(hosts[1].Ref);
        Assert.Equal("h1", ExpectMsg<QueryFailed>().FailingHost);
    }

    [Theory]
    [InlineData("", "Who?", 4, "context is empty")]
    [InlineData("ctx", "", 4, "question is empty")]
    [InlineData("ctx", "Who?", 0, "max new tokens")]
    [InlineData("ctx", "Who?", 1_000_000, "max new tokens")]
    public void Bad_input_gets_a_clear_failure_and_no_host_is_bothered(string context, string question, int maxNew, string expected)
    {
        var (router, hosts) = RouterWithHosts(1);
        router.Tell(new SubmitQuery("bad", QueryContext.FromText(context), question, Contracts.GenerationOptions.Greedy(maxNew), AttentionMode.Apb, null));
        Assert.Contains(expected, ExpectMsg<QueryFailed>().Reason);
        hosts[0].ExpectNoMsg(TimeSpan.FromMilliseconds(200));
        router.Tell(Query("good", mode: AttentionMode.Dense));
        ExpectMsg<QueryAccepted>();
    }

    [Fact]
    public void Context_over_the_model_limit_and_unknown_ids_and_duplicates_are_refused()
    {
        var (router, _) = RouterWithHosts(1);
        router.Tell(new SubmitQuery("long", QueryContext.FromTokens(new int[Tiny.MaxPositionEmbeddings]), "q", Contracts.GenerationOptions.Greedy(4), AttentionMode.Dense, null));
        Assert.Contains("exceeds the model's limit", ExpectMsg<QueryFailed>().Reason);
        router.Tell(new SubmitQuery("ids", QueryContext.FromTokens([1, 99_999]), "q", Contracts.GenerationOptions.Greedy(4), AttentionMode.Dense, null));
        Assert.Contains("outside the vocabulary", ExpectMsg<QueryFailed>().Reason);
        router.Tell(Query("dup", mode: AttentionMode.Dense));
        ExpectMsg<QueryAccepted>();
        router.Tell(Query("dup", mode: AttentionMode.Dense));
        Assert.Contains("already queued or running", ExpectMsg<QueryFailed>().Reason);
    }
}
