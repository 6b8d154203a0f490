using Akka.Actor;
using Akka.TestKit;
using Akka.TestKit.Xunit;
using ApbCluster.Contracts;
using ApbCluster.Parallel.Collectives;
using ApbCluster.Runtime.Actors;
using ApbCluster.Engine.DataPlane;
using ApbCluster.Engine;
using ApbCluster.Runtime.Tests.DataPlane;
using static TorchSharp.torch;

namespace ApbCluster.Runtime.Tests.Actors;

/// <summary>Two GpuHost actors on a fake NCCL ring (CPU): the communicator stays warm across queries, the hosts
/// answer the router's ring check, and a cancelled run or a drop aborts it.</summary>
public sealed class GpuHostRingTests() : TestKit(ClusterTestConfig.Hocon)
{
    /// <summary>One all-gather per run (as a real rank would talk to its peers); optionally waits to be cancelled.</summary>
    private sealed class RingEngine(string device) : IShardEngine
    {
        public volatile bool Block;
        public string Device => device;
        public string ModelName => "ring-test";
        public long KvBytes => 0;
        public DeviceMemory Memory() => new(1, 2);
        public long HostKvBytes => 0;
        public DeviceMemory HostMemory() => new(3, 4);

        public ShardOutcome Run(ShardWork work, ICollective collective, IShardEvents events, CancellationToken ct)
        {
            using var scope = NewDisposeScope();
            collective.AllGather(ones(1), "test gather");
            while (Block && !ct.IsCancellationRequested) ct.WaitHandle.WaitOne(20);
            ct.ThrowIfCancellationRequested();
            return new ShardOutcome(1, 1, 0);
        }

        public void Dispose() { }
    }

    private readonly FakeRings _fake = new();
    private readonly List<DataPlaneListener> _listeners = [];

    private (IActorRef[] Hosts, CollectiveFactory[] Factories, RingEngine[] Engines) Hosts()
    {
        var router = CreateTestProbe();
        var factories = new CollectiveFactory[2];
        var engines = new RingEngine[2];
        var hosts = Enumerable.Range(0, 2).Select(i =>
        {
            var listener = new DataPlaneListener("127.0.0.1", "127.0.0.1", 0);
            _listeners.Add(listener);
            factories[i] = new CollectiveFactory(listener, $"cuda:{i}", _fake.Join);
            engines[i] = new RingEngine($"cuda:{i}");
            return Sys.ActorOf(GpuHost.Props($"h{i}", engines[i], factories[i], router.Ref, TimeSpan.FromSeconds(30)));
        }).ToArray();
        return (hosts, factories, engines);
    }

    private static RunShard Work(string query, IActorRef coordinator, int rank, string ring, bool reuse) =>
        new(query, coordinator,
            new ShardRing
            {
                Rank = rank, WorldSize = 2, HostIds = ["h0", "h1"], DataEndpoints = ["127.0.0.1:1", "127.0.0.1:2"], CollectiveTimeoutMs = 5_000,
                NcclUniqueId = reuse ? null : FakeRings.Id(ring.Length), NcclRingId = ring, NcclReuse = reuse,
            },
            new ShardWork { Mode = AttentionMode.Apb, Plan = new ShardPlan([1, 1], 0, 0, 0, false), Document = [1, 2], Question = [3], Generation = GenerationOptions.Greedy(1) });

    private void Run(IActorRef[] hosts, TestProbe coordinator, string query, string ring, bool reuse)
    {
        for (int i = 0; i < 2; i++) hosts[i].Tell(Work(query, coordinator.Ref, i, ring, reuse));
        var done = new[] { coordinator.ExpectMsg<IQueryMessage>(TimeSpan.FromSeconds(10)), coordinator.ExpectMsg<IQueryMessage>(TimeSpan.FromSeconds(10)) };
        Assert.All(done, m => Assert.IsType<ShardFinished>(m));
    }

    private static bool[] Check(IActorRef[] hosts, TestProbe asker, string ring) =>
        hosts.Select(h =>
        {
            h.Tell(new NcclRingCheck("check", ring), asker.Ref);
            return asker.ExpectMsg<NcclRingStatus>().Ready;
        }).ToArray();

    [Fact]
    public void Hosts_keep_the_ring_warm_across_queries_and_say_so_when_asked()
    {
        var (hosts, factories, _) = Hosts();
        var coordinator = CreateTestProbe();
        Assert.Equal([false, false], Check(hosts, coordinator, "ring-a"));
        Run(hosts, coordinator, "q1", "ring-a", reuse: false);
        Assert.Equal([true, true], Check(hosts, coordinator, "ring-a"));
        Assert.Equal([false, false], Check(hosts, coordinator, "ring-b"));
        Run(hosts, coordinator, "q2", "ring-a", reuse: true);
        Run(hosts, coordinator, "q3", "ring-a", reuse: true);
        Assert.Equal(2, _fake.Joined.Count); // one join per host, then two warm queries
        Assert.All(factories, f => Assert.Equal((1, 2), (f.Rings.Joins, f.Rings.Reuses)));
        Assert.All(_fake.Joined, c => Assert.Null(c.Aborted));
    }

    [Fact]
    public void A_cancelled_run_aborts_the_communicator_and_the_ring_is_no_longer_offered()
    {
        var (hosts, _, engines) = Hosts();
        var coordinator = CreateTestProbe();
        Run(hosts, coordinator, "q1", "ring-a", reuse: false);
        foreach (var e in engines) e.Block = true;
        for (int i = 0; i < 2; i++) hosts[i].Tell(Work("q2", coordinator.Ref, i, "ring-a", reuse: true));
        AwaitCondition(() => Check(hosts, CreateTestProbe(), "ring-a").All(ready => !ready)); // busy: not offered
        foreach (var h in hosts) h.Tell(new CancelQuery("q2"));
        coordinator.ExpectNoMsg(TimeSpan.FromMilliseconds(300)); // an aborted run reports nothing; the router already knows
        AwaitAssert(() => Assert.All(_fake.Joined, c => Assert.NotNull(c.Aborted)), TimeSpan.FromSeconds(5));
        foreach (var e in engines) e.Block = false;
        Assert.Equal([false, false], Check(hosts, coordinator, "ring-a"));

        // The next query forms a new ring and runs.
        Run(hosts, coordinator, "q3", "ring-bb", reuse: false);
        Assert.Equal([true, true], Check(hosts, coordinator, "ring-bb"));
    }

    [Fact]
    public void A_drop_from_the_router_aborts_an_idle_ring_and_a_reuse_of_a_missing_ring_fails_at_once()
    {
        var (hosts, factories, _) = Hosts();
        var coordinator = CreateTestProbe();
        Run(hosts, coordinator, "q1", "ring-a", reuse: false);
        hosts[1].Tell(new DropNcclRing("ring-a", "host h9 was removed"));
        AwaitCondition(() => factories[1].Rings.CurrentRing is null);
        Assert.True(factories[1].Rings.WaitForBackground(TimeSpan.FromSeconds(5)));
        Assert.Equal([true, false], Check(hosts, coordinator, "ring-a"));

        // A reuse that reaches a host without the ring (the router's check makes this a race only) fails fast.
        hosts[1].Tell(Work("q2", coordinator.Ref, 1, "ring-a", reuse: true));
        var failed = coordinator.ExpectMsg<ShardFailed>();
        Assert.Equal(("h1", false), (failed.BlamedHost, failed.DataPlane));
        Assert.Contains("no warm NCCL communicator for ring ring-a", failed.Reason);
    }

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        foreach (var l in _listeners) l.Dispose();
    }
}
