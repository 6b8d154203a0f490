using Akka.Actor;
using Akka.TestKit.Xunit;
using ApbCluster.Contracts;
using ApbCluster.Runtime.Actors;
using ApbCluster.Engine.DataPlane;
using ApbCluster.Engine;

namespace ApbCluster.Runtime.Tests.Actors;

public sealed class GpuHostTests() : TestKit(ClusterTestConfig.Hocon)
{
    [Fact]
    public void Host_registers_periodically_and_reports_itself_locally()
    {
        var router = CreateTestProbe();
        using var listener = new DataPlaneListener("127.0.0.1", "127.0.0.1", 0);
        var host = Sys.ActorOf(GpuHost.Props("node/gpu0", new NoModelEngine(), new CollectiveFactory(listener, "cpu"), router.Ref, TimeSpan.FromMilliseconds(200)));

        var first = router.ExpectMsg<RegisterHost>();
        Assert.Equal(("node/gpu0", "cpu"), (first.HostId, first.Device));
        Assert.True(first.MemoryUsedBytes > 0 && first.MemoryTotalBytes >= first.MemoryUsedBytes);
        Assert.Equal(host, first.Host);
        Assert.Equal(listener.Endpoint, first.DataEndpoint);
        router.Reply(new HostRegistered("node/gpu0", router.Ref));

        // Periodic re-registration is what rebuilds a new router's registry after hand-over.
        router.ExpectMsg<RegisterHost>(TimeSpan.FromSeconds(3));

        host.Tell(GetClusterStatus.Instance);
        var local = Assert.Single(ExpectMsg<ClusterStatus>().Hosts);
        Assert.Equal(HostState.Ready, local.State);
    }

    [Fact]
    public void A_message_the_host_could_not_decode_fails_its_query_at_once()
    {
        var router = CreateTestProbe();
        var coordinator = CreateTestProbe();
        using var listener = new DataPlaneListener("127.0.0.1", "127.0.0.1", 0);
        var host = Sys.ActorOf(GpuHost.Props("node/gpu0", new NoModelEngine(), new CollectiveFactory(listener, "cpu"), router.Ref, TimeSpan.FromSeconds(30)));
        router.ExpectMsg<RegisterHost>();
        router.Reply(new HostRegistered("node/gpu0", router.Ref));

        host.Tell(new MalformedMessage("RS2", 99, "ApbSerializer: malformed 'RS2' payload (99 bytes): end of stream", "q-7"), coordinator.Ref);
        var failed = coordinator.ExpectMsg<ShardFailed>();
        Assert.Equal(("q-7", "node/gpu0", false), (failed.QueryId, failed.HostId, failed.DataPlane));
        Assert.Contains("could not decode a 'RS2' message (99 bytes)", failed.Reason);

        host.Tell(new MalformedMessage("ZZ9", 5, "ApbSerializer: unknown manifest 'ZZ9'", ""), coordinator.Ref);
        coordinator.ExpectNoMsg(TimeSpan.FromMilliseconds(200)); // no query to fail
        host.Tell(GetClusterStatus.Instance);
        Assert.Equal(HostState.Ready, Assert.Single(ExpectMsg<ClusterStatus>().Hosts).State);
    }

    [Fact]
    public void A_host_without_a_model_fails_its_rank_naming_itself_and_stays_up()
    {
        var router = CreateTestProbe();
        var coordinator = CreateTestProbe();
        using var listener = new DataPlaneListener("127.0.0.1", "127.0.0.1", 0);
        var host = Sys.ActorOf(GpuHost.Props("node/gpu0", new NoModelEngine(), new CollectiveFactory(listener, "cpu"), router.Ref, TimeSpan.FromSeconds(30)));
        router.ExpectMsg<RegisterHost>();

        host.Tell(new RunShard("q1", coordinator.Ref,
            new ShardRing { Rank = 0, WorldSize = 1, HostIds = ["node/gpu0"], DataEndpoints = [listener.Endpoint], CollectiveTimeoutMs = 1000 },
            new ShardWork { Mode = AttentionMode.Dense, Plan = new ShardPlan([3], 0, 0, 0, false), Document = [1, 2, 3], Question = [4], Generation = Contracts.GenerationOptions.Greedy(2) }));
        var failed = coordinator.ExpectMsg<ShardFailed>(TimeSpan.FromSeconds(10));
        Assert.False(failed.DataPlane);
        Assert.Equal("node/gpu0", failed.BlamedHost);
        Assert.Contains(NoModelEngine.Refusal, failed.Reason);

        // Still alive and Ready for the next query.
        var status = router.FishForMessage<RegisterHost>(r => r.State == HostState.Ready, TimeSpan.FromSeconds(5));
        Assert.Equal(0, status.KvBytes);
    }

    [Fact]
    public void A_malformed_run_is_refused_without_running()
    {
        var coordinator = CreateTestProbe();
        using var listener = new DataPlaneListener("127.0.0.1", "127.0.0.1", 0);
        var host = Sys.ActorOf(GpuHost.Props("h", new NoModelEngine(), new CollectiveFactory(listener, "cpu"), CreateTestProbe().Ref, TimeSpan.FromSeconds(30)));
        host.Tell(new RunShard("q1", coordinator.Ref,
            new ShardRing { Rank = 5, WorldSize = 2, HostIds = ["a", "b"], DataEndpoints = ["x:1", "y:2"], CollectiveTimeoutMs = 1000 },
            new ShardWork { Mode = AttentionMode.Apb, Plan = new ShardPlan([1, 1], 0, 0, 0, false), Document = [1], Question = [1], Generation = Contracts.GenerationOptions.Greedy(1) }));
        Assert.Contains("malformed", coordinator.ExpectMsg<ShardFailed>().Reason);
    }

    /// <summary>An engine whose status call throws once: the actor crashes on a register tick.</summary>
    private sealed class FlakyEngine : IShardEngine
    {
        private int _calls;
        public bool Disposed { get; private set; }
        public string Device => "cpu";
        public string ModelName => "flaky";
        public long KvBytes => 0;

        public DeviceMemory Memory() =>
            Interlocked.Increment(ref _calls) == 2 ? throw new InvalidOperationException("driver hiccup") : new DeviceMemory(1, 2);

        public long HostKvBytes => 0;
        public DeviceMemory HostMemory() => new(3, 4);

        public ShardOutcome Run(ShardWork work, Parallel.Collectives.ICollective collective, IShardEvents events, CancellationToken ct) =>
            throw new NotSupportedException();

        public void Dispose() => Disposed = true;
    }

    [Fact]
    public void An_actor_error_restarts_the_host_but_keeps_its_engine_and_model()
    {
        var router = CreateTestProbe();
        var engine = new FlakyEngine();
        using var listener = new DataPlaneListener("127.0.0.1", "127.0.0.1", 0);
        Sys.ActorOf(GpuHost.Props("h", engine, new CollectiveFactory(listener, "cpu"), router.Ref, TimeSpan.FromMilliseconds(100)));
        router.ExpectMsg<RegisterHost>();
        // The second tick throws (default supervision: restart); registration resumes afterwards.
        router.ExpectMsg<RegisterHost>(TimeSpan.FromSeconds(5));
        Assert.False(engine.Disposed, "a restart must not dispose the engine (the loaded model)");
    }
}
