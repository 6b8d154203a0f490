using ApbCluster.Contracts;
using ApbCluster.NativeInterop;
using ApbCluster.Parallel.Collectives;
using ApbCluster.Engine.DataPlane;
using static TorchSharp.torch;

namespace ApbCluster.Runtime.Tests.DataPlane;

/// <summary>A host's warm NCCL communicator (fake rings on CPU): reuse, and every way it is dropped.</summary>
public sealed class RingCommunicatorsTests
{
    private static ShardRing Work(string ring, bool reuse, int rank = 0, int world = 1, byte[]? id = null) => new()
    {
        Rank = rank,
        WorldSize = world,
        HostIds = [.. Enumerable.Range(0, world).Select(i => $"h{i}")],
        DataEndpoints = [.. Enumerable.Range(0, world).Select(i => $"127.0.0.1:{i + 1}")],
        CollectiveTimeoutMs = 5_000,
        NcclUniqueId = reuse ? null : id ?? FakeRings.Id(ring.Length),
        NcclRingId = ring,
        NcclReuse = reuse,
    };

    [Fact]
    public void A_clean_run_keeps_the_communicator_and_the_next_query_on_the_ring_reuses_it()
    {
        var fake = new FakeRings();
        using var rings = new RingCommunicators(fake.Join);
        Assert.False(rings.IsReady("r1"));

        var first = rings.Acquire("q1", Work("r1", reuse: false), CancellationToken.None);
        Assert.False(first.Reused);
        Assert.False(rings.IsReady("r1")); // in use: not offered to another query
        first.End(clean: true);
        Assert.True(rings.IsReady("r1"));
        Assert.False(rings.IsReady("r2"));

        var second = rings.Acquire("q2", Work("r1", reuse: true) with { CollectiveTimeoutMs = 7_000 }, CancellationToken.None);
        Assert.True(second.Reused);
        Assert.Same(first.Collective, second.Collective);
        Assert.Equal(TimeSpan.FromSeconds(7), second.Collective.Deadline); // each query's own timeout
        second.End(clean: true);
        Assert.Equal((1, 1), (rings.Joins, rings.Reuses));
        Assert.Null(((FakeRingCollective)first.Collective).Aborted);
    }

    [Fact]
    public void A_run_that_does_not_end_cleanly_aborts_the_communicator_and_the_ring_is_gone()
    {
        var fake = new FakeRings();
        using var rings = new RingCommunicators(fake.Join);
        var lease = rings.Acquire("q1", Work("r1", reuse: false), CancellationToken.None);
        lease.End(clean: false);
        Assert.NotNull(((FakeRingCollective)lease.Collective).Aborted); // abort, never finalize
        Assert.False(((FakeRingCollective)lease.Collective).Disposed);
        Assert.False(rings.IsReady("r1"));
        Assert.Null(rings.CurrentRing);
        var missing = Assert.Throws<RingMissingException>(() => rings.Acquire("q2", Work("r1", reuse: true), CancellationToken.None));
        Assert.Contains("r1", missing.Message);
    }

    [Fact]
    public void Joining_another_ring_aborts_the_one_held()
    {
        var fake = new FakeRings();
        using var rings = new RingCommunicators(fake.Join);
        var r1 = rings.Acquire("q1", Work("r1", reuse: false), CancellationToken.None);
        r1.End(clean: true);
        var r2 = rings.Acquire("q2", Work("r2", reuse: false, id: FakeRings.Id(9)), CancellationToken.None);
        Assert.NotNull(((FakeRingCollective)r1.Collective).Aborted);
        Assert.NotSame(r1.Collective, r2.Collective);
        r2.End(clean: true);
        Assert.Equal("r2", rings.CurrentRing);
        Assert.False(rings.IsReady("r1"));
    }

    [Fact]
    public void Dropping_an_idle_ring_aborts_it_in_the_background_and_dropping_one_in_use_asks_its_run_to_abort()
    {
        var fake = new FakeRings();
        using var rings = new RingCommunicators(fake.Join);
        var idle = rings.Acquire("q1", Work("r1", reuse: false), CancellationToken.None);
        idle.End(clean: true);
        rings.Drop("r1", "host h1 was removed");
        Assert.True(rings.WaitForBackground(TimeSpan.FromSeconds(5)));
        Assert.Equal("host h1 was removed", ((FakeRingCollective)idle.Collective).Aborted);
        Assert.False(rings.IsReady("r1"));

        var busy = rings.Acquire("q2", Work("r2", reuse: false, id: FakeRings.Id(5)), CancellationToken.None);
        rings.Drop("r2", "query failed");
        var comm = (FakeRingCollective)busy.Collective;
        Assert.Equal("query failed", comm.AbortRequested); // the shard thread carries it out
        Assert.Null(comm.Aborted);
        busy.End(clean: true); // even a run that got through: a dropped ring is not kept
        Assert.NotNull(comm.Aborted);
        Assert.Null(rings.CurrentRing);

        rings.Drop("unknown", "no-op");
    }

    [Fact]
    public void A_ring_dropped_while_its_join_is_in_progress_is_aborted_when_the_join_completes()
    {
        var fake = new FakeRings();
        using var rings = new RingCommunicators(fake.Join);
        fake.JoinGate.Reset();
        var join = Task.Run(() => rings.Acquire("q1", Work("r1", reuse: false), CancellationToken.None));
        Thread.Sleep(100);
        rings.Drop("r1", "member lost");
        fake.JoinGate.Set();
        Assert.ThrowsAny<OperationCanceledException>(() => join.GetAwaiter().GetResult());
        Assert.NotNull(Assert.Single(fake.Joined).Aborted);
        Assert.Null(rings.CurrentRing);
    }

    [Fact]
    public void Disposing_aborts_the_held_communicator()
    {
        var fake = new FakeRings();
        var rings = new RingCommunicators(fake.Join);
        var lease = rings.Acquire("q1", Work("r1", reuse: false), CancellationToken.None);
        lease.End(clean: true);
        rings.Dispose();
        Assert.NotNull(((FakeRingCollective)lease.Collective).Aborted);
        Assert.Throws<ObjectDisposedException>(() => rings.Acquire("q2", Work("r1", reuse: true), CancellationToken.None));
    }

    [Fact]
    public void Cancelling_a_run_asks_the_ring_to_abort_and_its_end_drops_it_without_touching_the_next_query()
    {
        var fake = new FakeRings();
        using var listener = new DataPlaneListener("127.0.0.1", "127.0.0.1", 0);
        var factory = new CollectiveFactory(listener, "cuda:0", fake.Join);
        using var cts = new CancellationTokenSource();
        // One rank is enough to exercise the lease (a 1-rank ring; the router never makes one, the factory allows it).
        var q = factory.Acquire("q1", Work("r1", reuse: false), cts.Token);
        Assert.NotNull(q.Ring);
        cts.Cancel();
        var comm = (FakeRingCollective)q.Collective;
        Assert.NotNull(comm.AbortRequested);
        q.End(clean: false);
        Assert.NotNull(comm.Aborted);
        Assert.False(factory.Rings.IsReady("r1"));

        var next = factory.Acquire("q2", Work("r2", reuse: false, id: FakeRings.Id(3)), CancellationToken.None);
        next.End(clean: true);
        cts.Cancel(); // already cancelled: nothing reaches the new ring
        Assert.True(factory.Rings.IsReady("r2"));
    }

    [Fact]
    public void The_handshake_fails_ranks_that_are_on_different_queries()
    {
        var ranks = InProcessCollectiveGroup.Create(2, TimeSpan.FromSeconds(5));
        try
        {
            var same = CollectiveRunner.Run(ranks, c =>
            {
                RingHandshake.Verify(c, "q1", "r1", ["h0", "h1"]);
                return true;
            });
            Assert.All(same, Assert.True);
            var errors = new CollectiveException?[2];
            CollectiveRunner.Run(ranks, c =>
            {
                try { RingHandshake.Verify(c, c.Rank == 0 ? "q1" : "q2", "r1", ["h0", "h1"]); }
                catch (CollectiveException e) { errors[c.Rank] = e; }
                return 0;
            });
            Assert.Equal(1, errors[0]!.Peer);
            Assert.Contains("h1 is running another query", errors[0]!.Message);
            Assert.Equal(0, errors[1]!.Peer);
        }
        finally { CollectiveRunner.DisposeAll(ranks); }
        Assert.NotEqual(RingHandshake.Key("q1", "r1"), RingHandshake.Key("q1", "r2"));
        Assert.Equal(RingHandshake.Key("q1", "r1"), RingHandshake.Key("q1", "r1"));
    }

    [Fact]
    public void The_factory_runs_two_ranks_over_a_warm_ring_and_a_one_gpu_query_without_nccl()
    {
        var fake = new FakeRings();
        using var l0 = new DataPlaneListener("127.0.0.1", "127.0.0.1", 0);
        using var l1 = new DataPlaneListener("127.0.0.1", "127.0.0.1", 0);
        var factories = new[] { new CollectiveFactory(l0, "cuda:0", fake.Join), new CollectiveFactory(l1, "cuda:1", fake.Join) };
        float[] RunOn(string query, bool reuse) =>
            Enumerable.Range(0, 2).Select(rank => Task.Factory.StartNew(() =>
            {
                var q = factories[rank].Acquire(query, Work("ring", reuse, rank, 2, FakeRings.Id(1)), CancellationToken.None);
                try { return q.Collective.AllGather(full(1, (float)rank + 1), "sum").Sum(t => t.item<float>()); }
                finally { q.End(clean: true); }
            }, TaskCreationOptions.LongRunning)).ToArray().Select(t => t.GetAwaiter().GetResult()).ToArray();

        Assert.Equal([3f, 3f], RunOn("q1", reuse: false));
        Assert.Equal([3f, 3f], RunOn("q2", reuse: true));
        Assert.Equal(2, fake.Joined.Count); // one join per rank, then reuse
        Assert.All(factories, f => Assert.Equal((1, 1), (f.Rings.Joins, f.Rings.Reuses)));

        // One GPU host: no ring, no NCCL; the warm ring stays as it was.
        var one = factories[0].Acquire("q3", Work("", reuse: false, 0, 1) with { NcclUniqueId = null }, CancellationToken.None);
        Assert.Null(one.Ring);
        Assert.Equal((1, TorchSharp.DeviceType.CUDA), (one.Collective.WorldSize, one.Collective.Device.type)); // an in-process group of one (no CUDA here to run it)
        one.End(clean: true);
        Assert.True(factories[0].Rings.IsReady("ring"));
        foreach (var f in factories) f.Dispose();
    }
}
