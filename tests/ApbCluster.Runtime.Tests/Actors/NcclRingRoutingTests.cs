using Akka.Actor;
using Akka.TestKit;
using Akka.TestKit.Xunit;
using ApbCluster.Contracts;
using ApbCluster.Model.Config;
using ApbCluster.Runtime.Actors;
using ApbCluster.Engine;

namespace ApbCluster.Runtime.Tests.Actors;

/// <summary>The router and QueryRun against probe GPU hosts: a query forms an NCCL ring, the next one on the same
/// hosts reuses it after every member confirms it holds it, and anything unclean gives the ring up.</summary>
public sealed class NcclRingRoutingTests() : TestKit(ClusterTestConfig.Hocon)
{
    private static readonly ModelConfig Tiny = ModelShapes.Get("tiny");
    private static readonly byte[] Id1 = [.. Enumerable.Range(0, 128).Select(i => (byte)i)];
    private static readonly byte[] Id2 = [.. Enumerable.Range(0, 128).Select(i => (byte)(255 - i))];

    private static SubmitQuery Query(string id, AttentionMode mode = AttentionMode.Apb) =>
        new(id, QueryContext.FromText("The quick brown fox jumps over the lazy dog, twice over."), "Who jumps?", GenerationOptions.Greedy(2), mode, null);

    private (IActorRef Router, TestProbe[] Hosts) RouterWithGpus(int hosts)
    {
        var router = Sys.ActorOf(QueryRouter.Props(new RouterSettings { Codec = new ByteTokenCodec(Tiny), Model = Tiny, BlameGrace = TimeSpan.FromMilliseconds(300) }));
        var probes = Enumerable.Range(0, hosts).Select(_ => CreateTestProbe()).ToArray();
        for (int i = 0; i < hosts; i++) Register(router, probes[i], $"h{i}", $"cuda:{i}");
        return (router, probes);
    }

    private static void Register(IActorRef router, TestProbe probe, string id, string device)
    {
        router.Tell(new RegisterHost(id, probe.Ref, device, 1L << 30, 64L << 30, "random:tiny:7", HostState.Ready, 0, "127.0.0.1:1"), probe.Ref);
        probe.ExpectMsg<HostRegistered>();
    }

    /// <summary>Runs a query that forms a new ring (rank 0 is asked for the id) to a clean end; returns its RunShards.</summary>
    private RunShard[] RunOnNewRing(IActorRef router, TestProbe[] hosts, string queryId, byte[] id, List<DropNcclRing>? drops = null)
    {
        router.Tell(Query(queryId));
        ExpectMsg<QueryAccepted>();
        var request = Expect<NcclIdRequest>(hosts[0], drops);
        Assert.Equal(queryId, request.QueryId);
        hosts[0].Reply(new NcclIdReply(queryId, id, null));
        var runs = hosts.Select(h => Expect<RunShard>(h, drops)).ToArray();
        Finish(runs);
        return runs;
    }

    private void Finish(RunShard[] runs)
    {
        foreach (var r in runs) r.Coordinator.Tell(new ShardFinished(r.QueryId, r.Ring.HostIds[r.Ring.Rank], r.Ring.Rank, 1, 2, 2));
        ExpectMsg<QueryCompleted>();
    }

    /// <summary>The next <typeparamref name="T"/>, recording the DropNcclRing messages before it (they may come in either order).</summary>
    private static T Expect<T>(TestProbe probe, List<DropNcclRing>? drops)
    {
        var found = probe.FishForMessage(m =>
        {
            if (m is DropNcclRing d) drops?.Add(d);
            return m is T;
        }, TimeSpan.FromSeconds(3));
        return (T)found;
    }

    /// <summary>Records the DropNcclRing messages left on the probe.</summary>
    private static void Drain(TestProbe probe, List<DropNcclRing> drops)
    {
        while (probe.HasMessages)
        {
            if (probe.ReceiveOne(TimeSpan.Zero) is DropNcclRing d) drops.Add(d);
        }
    }

    [Fact]
    public void The_first_query_forms_a_ring_and_the_next_one_reuses_it_warm()
    {
        var (router, hosts) = RouterWithGpus(2);
        var first = RunOnNewRing(router, hosts, "q1", Id1);
        hosts[1].ExpectNoMsg(TimeSpan.FromMilliseconds(100)); // only rank 0 makes the id
        var ring = first[0].Ring.NcclRingId;
        Assert.False(string.IsNullOrEmpty(ring));
        Assert.All(first, r => Assert.Equal((ring, false), (r.Ring.NcclRingId, r.Ring.NcclReuse)));
        Assert.All(first, r => Assert.Equal(Id1, r.Ring.NcclUniqueId));

        router.Tell(Query("q2"));
        ExpectMsg<QueryAccepted>();
        foreach (var h in hosts)
        {
            var check = h.ExpectMsg<NcclRingCheck>();
            Assert.Equal(("q2", ring), (check.QueryId, check.RingId));
            h.Reply(new NcclRingStatus("q2", $"h{Array.IndexOf(hosts, h)}", ring, true));
        }
        var second = hosts.Select(h => h.ExpectMsg<RunShard>()).ToArray();
        Assert.All(second, r => Assert.Equal((ring, true), (r.Ring.NcclRingId, r.Ring.NcclReuse)));
        Assert.All(second, r => Assert.Null(r.Ring.NcclUniqueId));
        Finish(second);
        hosts[0].ExpectNoMsg(TimeSpan.FromMilliseconds(100)); // no NcclIdRequest, no drop
    }

    [Fact]
    public void A_member_that_no_longer_holds_the_ring_makes_the_query_form_a_new_one()
    {
        var (router, hosts) = RouterWithGpus(2);
        var ring = RunOnNewRing(router, hosts, "q1", Id1)[0].Ring.NcclRingId;

        router.Tell(Query("q2"));
        ExpectMsg<QueryAccepted>();
        foreach (var h in hosts) h.ExpectMsg<NcclRingCheck>();
        hosts[0].Reply(new NcclRingStatus("q2", "h0", ring, true));
        hosts[1].Reply(new NcclRingStatus("q2", "h1", ring, false));
        var drops = new List<DropNcclRing>();
        var request = Expect<NcclIdRequest>(hosts[0], drops);
        hosts[0].Reply(new NcclIdReply(request.QueryId, Id2, null));
        var runs = hosts.Select(h => Expect<RunShard>(h, drops)).ToArray();
        Assert.All(runs, r => Assert.False(r.Ring.NcclReuse));
        Assert.All(runs, r => Assert.Equal(Id2, r.Ring.NcclUniqueId));
        Assert.NotEqual(ring, runs[0].Ring.NcclRingId);
        Assert.Equal(runs[0].Ring.NcclRingId, runs[1].Ring.NcclRingId);
        Finish(runs);
        foreach (var h in hosts) Drain(h, drops);
        Assert.All(drops, d => Assert.Equal(ring, d.RingId)); // the old ring is given up, never the new one
    }

    [Fact]
    public void A_failed_query_gives_its_ring_up_and_the_next_query_forms_a_new_one()
    {
        var (router, hosts) = RouterWithGpus(2);
        var ring = RunOnNewRing(router, hosts, "q1", Id1)[0].Ring.NcclRingId;
        router.Tell(Query("q2"));
        ExpectMsg<QueryAccepted>();
        for (int i = 0; i < hosts.Length; i++)
        {
            hosts[i].ExpectMsg<NcclRingCheck>();
            hosts[i].Reply(new NcclRingStatus("q2", $"h{i}", ring, true));
        }
        var runs = hosts.Select(h => h.ExpectMsg<RunShard>()).ToArray();
        runs[1].Coordinator.Tell(new ShardFailed("q2", "h1", "host h1: CUDA out of memory", "h1", false));
        Assert.Equal("h1", ExpectMsg<QueryFailed>().FailingHost);
        foreach (var h in hosts)
        {
            h.ExpectMsg<CancelQuery>();
            Assert.Equal(ring, h.ExpectMsg<DropNcclRing>().RingId);
        }

        var next = RunOnNewRing(router, hosts, "q3", Id2);
        Assert.NotEqual(ring, next[0].Ring.NcclRingId);
    }

    [Fact]
    public void A_host_registering_as_a_new_actor_gives_the_ring_up()
    {
        var (router, hosts) = RouterWithGpus(2);
        var ring = RunOnNewRing(router, hosts, "q1", Id1)[0].Ring.NcclRingId;
        var restarted = CreateTestProbe();
        Register(router, restarted, "h1", "cuda:1");
        Assert.Equal(ring, hosts[0].ExpectMsg<DropNcclRing>().RingId);

        router.Tell(Query("q2"));
        ExpectMsg<QueryAccepted>();
        hosts[0].ExpectMsg<NcclIdRequest>(); // no check: the router has no ring for these hosts
        hosts[0].Reply(new NcclIdReply("q2", Id2, null));
        var runs = new[] { hosts[0].ExpectMsg<RunShard>(), restarted.ExpectMsg<RunShard>() };
        Assert.All(runs, r => Assert.False(r.Ring.NcclReuse));
        Assert.NotEqual(ring, runs[0].Ring.NcclRingId);
    }

    [Fact]
    public void One_gpu_host_and_dense_queries_need_no_nccl()
    {
        var (router, hosts) = RouterWithGpus(2);
        router.Tell(Query("dense", AttentionMode.Dense));
        ExpectMsg<QueryAccepted>();
        var run = hosts[0].ExpectMsg<RunShard>();
        Assert.Equal((1, "", false), (run.Ring.WorldSize, run.Ring.NcclRingId, run.Ring.NcclReuse));
        Assert.Null(run.Ring.NcclUniqueId);
        hosts[1].ExpectNoMsg(TimeSpan.FromMilliseconds(100));
    }
}
