using Akka.Actor;
using Akka.TestKit;
using Akka.TestKit.Xunit;
using ApbCluster.Contracts;
using ApbCluster.Model.Config;
using ApbCluster.Model.KvStores;
using ApbCluster.Runtime.Actors;
using ApbCluster.Engine;

namespace ApbCluster.Runtime.Tests.Actors;

/// <summary>The router admits queries by the hosts' KV memory (probe hosts reporting a KV budget as their memory):
/// the estimate per host, refusal of a query no idle host could hold, and a queue for one that fits only alone. A
/// ShadowKV query is booked at its store's size on the device and its values' in host memory (probe hosts reporting
/// a host KV budget).</summary>
public sealed class KvAdmissionTests() : TestKit(ClusterTestConfig.Hocon)
{
    private static readonly ModelConfig Tiny = ModelShapes.Get("tiny"); // CPU fp32: 4 x 2 x 16 x 2 x 4 = 1 KiB per token

    private static RouterSettings Settings() => new() { Codec = new ByteTokenCodec(Tiny), Model = Tiny, MaxInFlight = 8 };

    /// <summary>A document of <paramref name="tokens"/> byte tokens (the random model's codec: one id per byte).</summary>
    private static SubmitQuery Query(string id, int tokens, int maxNew = 4, KvStoreOptions? kv = null) =>
        new(id, QueryContext.FromTokens(Enumerable.Range(0, tokens).Select(i => 3 + i % 200).ToArray()), "q?", Contracts.GenerationOptions.Greedy(maxNew),
            AttentionMode.Apb, null, BlockSplitMode.Equal, KvStore: kv);

    /// <summary>Small enough that a ShadowKV store of tiny's KV is a fraction of it: rank 4 of 32, 8 chunks a step.</summary>
    private static readonly ShadowKvOptions Shadow = new() { Rank = 4, Chunk = 8, Budget = 64, Outliers = 4, Local = 4, Values = ShadowKvValues.Host };

    private (IActorRef Router, TestProbe[] Hosts) RouterWithHosts(long kvBudget, long hostKvBudget = 1L << 40)
    {
        var router = Sys.ActorOf(QueryRouter.Props(Settings()));
        var probes = new[] { CreateTestProbe(), CreateTestProbe() };
        for (int i = 0; i < probes.Length; i++)
        {
            router.Tell(new RegisterHost($"h{i}", probes[i].Ref, "cpu", 0, kvBudget, "random:tiny:7", HostState.Ready, 0, $"127.0.0.1:{5000 + i}")
                { HostMemoryTotalBytes = hostKvBudget }, probes[i].Ref);
            probes[i].ExpectMsg<HostRegistered>();
        }
        return (router, probes);
    }

    [Fact]
    public void The_estimate_is_each_hosts_tokens_times_layers_kv_heads_head_dim_k_and_v_and_dtype()
    {
        Assert.Equal(1024, KvEstimate.BytesPerToken(Tiny, "cpu"));
        Assert.Equal(512, KvEstimate.BytesPerToken(Tiny with { TorchDtype = "bfloat16" }, "cuda:0")); // the checkpoint's bf16 on GPUs
        var plan = QueryPlanning.Plan(AttentionMode.Apb, 2, 1000, 10, 0, null, null, Parallel.Plan.BlockSplit.Equal, Tiny);
        var bytes = KvEstimate.PerRank(plan, 6, Tiny, ["cpu", "cpu"]);
        Assert.Equal([500L * 1024, (500L + 10 + 6) * 1024], bytes); // the last host also keeps the question and new tokens
        Assert.Equal("2.0 MiB", KvEstimate.Format(2L << 20));
    }

    [Fact]
    public void A_query_no_idle_host_could_hold_is_refused_at_once_with_the_figures()
    {
        var (router, hosts) = RouterWithHosts(kvBudget: 256 << 10);
        router.Tell(Query("huge", tokens: 2000));
        var failed = ExpectMsg<QueryFailed>();
        Assert.Matches(@"^the query needs \d+\.\d (KiB|MiB) of KV on host h0, which can hold at most 256\.0 KiB", failed.Reason);
        hosts[0].ExpectNoMsg(TimeSpan.FromMilliseconds(200)); // nothing reached a host

        router.Tell(Query("small", tokens: 200));
        Assert.Equal("small", ExpectMsg<QueryAccepted>().QueryId);
    }

    [Fact]
    public void Two_queries_that_fit_only_alone_run_one_after_the_other_and_smaller_ones_do_not_overtake()
    {
        var (router, hosts) = RouterWithHosts(kvBudget: 400 << 10);
        router.Tell(Query("a", tokens: 500)); // ~250 KiB per host
        Assert.Equal("a", ExpectMsg<QueryAccepted>().QueryId);
        var runA = hosts.Select(h => h.ExpectMsg<RunShard>()).ToList();
        router.Tell(Query("b", tokens: 500));
        router.Tell(Query("c", tokens: 50)); // would fit beside a, but waits behind b
        ExpectNoMsg(TimeSpan.FromMilliseconds(300));
        hosts[0].ExpectNoMsg(TimeSpan.FromMilliseconds(50));
        router.Tell(GetClusterStatus.Instance);
        var status = ExpectMsg<ClusterStatus>();
        Assert.Equal((2, 1), (status.QueueDepth, status.InFlight));

        foreach (var (run, i) in runA.Select((r, i) => (r, i)))
            run.Coordinator.Tell(new ShardFinished(run.QueryId, $"h{i}", i, 1, 1, 0));
        Assert.Equal("a", ExpectMsg<QueryCompleted>().QueryId);
        // b (~250 KiB) and c (~25 KiB) fit 400 KiB together: both start. Each run is its own actor, so their messages
        // may arrive in either order; c not overtaking b is the (2 queued, 1 running) status above.
        Assert.Equal(["b", "c"], new[] { ExpectMsg<QueryAccepted>().QueryId, ExpectMsg<QueryAccepted>().QueryId }.Order());
        Assert.Equal(["b", "c"], hosts[0].ReceiveN(2).Cast<RunShard>().Select(r => r.QueryId).Order());
    }

    [Fact]
    public void A_shadowkv_estimate_is_the_store_on_the_device_and_its_values_in_host_memory()
    {
        var plan = QueryPlanning.Plan(AttentionMode.Apb, 2, 2000, 10, 0, null, null, Parallel.Plan.BlockSplit.Equal, Tiny);
        var (device, host) = KvEstimate.PerRank(plan, 6, Tiny, ["cpu", "cpu"], Shadow);
        var (store, values) = ShadowKvStore.EstimateBytes(1000, Tiny, Shadow);
        Assert.Equal([store, store + (10 + 6) * 1024], device); // the last host's question and new tokens stay full
        Assert.Equal([values, values], host);
        Assert.True(store < 1000 * 1024 / 3, $"the store ({store} B) is a fraction of the full shard"); // what admission gains
        Assert.Equal(1000L * 2 * 16 * 4 * 4 - 4 * 8 * 2 * 16 * 4 * 4, values); // V of every sparse token (all but the local chunks)
        // CPU hosts run fp32 whatever the checkpoint's dtype.
        var bf16 = KvEstimate.PerRank(plan, 6, Tiny with { TorchDtype = "bfloat16" }, ["cpu", "cpu"], Shadow);
        Assert.Equal(device, bf16.Device);
        Assert.Equal(host, bf16.Host);
    }

    [Fact]
    public void A_shadowkv_query_too_large_for_full_kv_is_admitted_and_one_whose_values_exceed_host_memory_is_refused_with_the_figures()
    {
        var (router, hosts) = RouterWithHosts(kvBudget: 512 << 10, hostKvBudget: 1 << 20);
        router.Tell(Query("full", tokens: 2000)); // 1000 KiB of full KV per host
        Assert.Matches(@"^the query needs \d+\.\d KiB of KV on host h0, which can hold at most 512\.0 KiB", ExpectMsg<QueryFailed>().Reason);

        router.Tell(Query("shadow", tokens: 2000, kv: ShadowKvWire.ToWire(Shadow)));
        Assert.Equal("shadow", ExpectMsg<QueryAccepted>().QueryId);
        Assert.All(hosts, h => Assert.Equal(ShadowKvWire.ToWire(Shadow), h.ExpectMsg<RunShard>().Work.KvStore));

        var (router2, hosts2) = RouterWithHosts(kvBudget: 512 << 10, hostKvBudget: 256 << 10);
        router2.Tell(Query("values", tokens: 2000, kv: ShadowKvWire.ToWire(Shadow)));
        var failed = ExpectMsg<QueryFailed>();
        Assert.Equal("the query needs 484.0 KiB of host memory for its ShadowKV values on host h0, which can hold at most 256.0 KiB of them " +
                     "(values on the device, a shorter context or more hosts would fit)", failed.Reason);
        hosts2[0].ExpectNoMsg(TimeSpan.FromMilliseconds(200)); // nothing reached a host
    }

    [Fact]
    public void Two_shadowkv_queries_whose_values_fit_host_memory_only_alone_run_one_after_the_other()
    {
        var (router, hosts) = RouterWithHosts(kvBudget: 4 << 20, hostKvBudget: 800 << 10); // 484 KiB of values each
        router.Tell(Query("a", tokens: 2000, kv: ShadowKvWire.ToWire(Shadow)));
        Assert.Equal("a", ExpectMsg<QueryAccepted>().QueryId);
        var runA = hosts.Select(h => h.ExpectMsg<RunShard>()).ToList();
        router.Tell(Query("b", tokens: 2000, kv: ShadowKvWire.ToWire(Shadow)));
        ExpectNoMsg(TimeSpan.FromMilliseconds(300));
        router.Tell(GetClusterStatus.Instance);
        var status = ExpectMsg<ClusterStatus>();
        Assert.Equal((1, 1), (status.QueueDepth, status.InFlight)); // b waits for a's host memory

        foreach (var (run, i) in runA.Select((r, i) => (r, i)))
            run.Coordinator.Tell(new ShardFinished(run.QueryId, $"h{i}", i, 1, 1, 0));
        Assert.Equal("a", ExpectMsg<QueryCompleted>().QueryId);
        Assert.Equal("b", ExpectMsg<QueryAccepted>().QueryId);
    }
}
