using System.Diagnostics;
using ApbCluster.NativeInterop;
using ApbCluster.NativeInterop.Nccl;
using ApbCluster.Parallel.Collectives;
using ApbCluster.Parallel.Tests.Gpu;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace ApbCluster.Parallel.Tests;

/// <summary>NCCL on two GPUs of one process. Skipped (with the reason) where CUDA or a second GPU is missing.</summary>
[Trait("Category", "Gpu")]
[Collection(GpuCollection.Name)]
public class NcclGpuTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    private static T[] OnTwoGpus<T>(Func<ICollective, T> body)
    {
        Assert.SkipUnless(GpuAvailability.HasTwoGpus, GpuAvailability.SkipReason);
        var ranks = NcclCollective.CreateAllInProcess([0, 1], Deadline);
        try { return CollectiveRunner.Run(ranks, body); }
        finally { CollectiveRunner.DisposeAll(ranks); }
    }

    private static Tensor Marked(ICollective c, int rank, int slot = 0) =>
        (arange(1024, ScalarType.Float32) + 100_000f * rank + 1_000_000f * slot).to(ScalarType.BFloat16).to(c.Device);

    [Fact]
    public void Reports_the_nccl_version()
    {
        Assert.SkipUnless(GpuAvailability.HasTwoGpus, GpuAvailability.SkipReason);
        Assert.StartsWith("2.", NcclNative.VersionString());
    }

    [Fact]
    public void AllGather_on_two_gpus()
    {
        var ok = OnTwoGpus(c =>
        {
            var parts = c.AllGather(Marked(c, c.Rank).reshape(32, 32), "gpu gather");
            return parts.Select((p, i) => p.device_type == c.Device.type && p.device_index == c.Device.index && p.reshape(-1).Same(Marked(c, i))).All(b => b);
        });
        Assert.All(ok, Assert.True);
    }

    [Fact]
    public void SendReceive_ring_on_two_gpus()
    {
        var ok = OnTwoGpus(c =>
        {
            var got = c.SendReceive(Marked(c, c.Rank), c.NextRank(), c.PreviousRank(), "gpu ring");
            var chained = c.Rank == 0 ? null : c.Receive([1024], ScalarType.BFloat16, 0, "gpu chain");
            if (c.Rank == 0) c.Send(Marked(c, 0, slot: 1), 1, "gpu chain");
            return got.Same(Marked(c, c.PreviousRank())) && (chained is null || chained.Same(Marked(c, 0, slot: 1)));
        });
        Assert.All(ok, Assert.True);
    }

    [Fact]
    public void Broadcast_on_two_gpus()
    {
        var ok = OnTwoGpus(c =>
            c.Broadcast(c.Rank == 1 ? Marked(c, 1) : null, [1024], ScalarType.BFloat16, 1, "gpu broadcast").Same(Marked(c, 1)));
        Assert.All(ok, Assert.True);
    }

    [Fact]
    public void AllToAll_and_barrier_on_two_gpus()
    {
        var ok = OnTwoGpus(c =>
        {
            var got = c.AllToAll([Marked(c, c.Rank, 0), Marked(c, c.Rank, 1)], "gpu all-to-all");
            c.Barrier("gpu barrier");
            return got.Select((g, i) => g.Same(Marked(c, i, slot: c.Rank))).All(b => b);
        });
        Assert.All(ok, Assert.True);
    }

    /// <summary>Ring exchanges of large blocks back to back, with torch kernels in between on both GPUs
    /// (what ring attention does): every step must complete and carry the peer's block.</summary>
    [Fact]
    public void Large_ring_exchanges_with_compute_in_between()
    {
        var ok = OnTwoGpus(c =>
        {
            using var block = full(new long[] { 16384, 8, 256 }, c.Rank + 1, ScalarType.BFloat16, c.Device); // 64 MiB
            bool all = true;
            for (int step = 0; step < 24; step++)
            {
                using var busy = block.matmul(block.transpose(1, 2)); // keep the default stream busy
                using var got = c.SendReceive(block, c.NextRank(), c.PreviousRank(), $"big ring step {step}");
                using var expected = full(new long[] { 16384, 8, 256 }, c.PreviousRank() + 1, ScalarType.BFloat16, c.Device);
                all &= got.Same(expected);
            }
            return all;
        });
        Assert.All(ok, Assert.True);
    }

    [Fact]
    public void Watchdog_aborts_when_a_rank_never_calls()
    {
        Assert.SkipUnless(GpuAvailability.HasTwoGpus, GpuAvailability.SkipReason);
        var ranks = NcclCollective.CreateAllInProcess([0, 1], TimeSpan.FromSeconds(3));
        var clock = Stopwatch.StartNew();
        try
        {
            var e = Assert.Throws<CollectiveException>(() => CollectiveRunner.Run(ranks, c =>
            {
                if (c.Rank == 1) return 0; // rank 1 never joins: rank 0's kernel would wait forever
                c.AllGather(Marked(c, 0), "watchdog");
                return 0;
            }));
            Assert.True(e.TimedOut);
            Assert.Equal(0, e.Rank);
            Assert.Equal([1], e.MissingRanks);
            Assert.True(((NcclCollective)ranks[0]).Communicator.IsAborted);
        }
        finally { CollectiveRunner.DisposeAll(ranks); }
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), $"no hang expected, took {clock.Elapsed}");
    }

    [Fact]
    public void RequestAbort_from_another_thread_stops_a_rank_waiting_on_a_silent_peer()
    {
        Assert.SkipUnless(GpuAvailability.HasTwoGpus, GpuAvailability.SkipReason);
        var ranks = NcclCollective.CreateAllInProcess([0, 1], TimeSpan.FromSeconds(10));
        var rank0 = (NcclCollective)ranks[0];
        var clock = Stopwatch.StartNew();
        try
        {
            // The actor-side abort of a cancelled query: only a flag from this thread; rank 0's own thread aborts.
            var aborter = new Thread(() =>
            {
                Thread.Sleep(500);
                rank0.RequestAbort("cancelled by the test");
            });
            aborter.Start();
            var e = Assert.Throws<CollectiveException>(() => CollectiveRunner.Run(ranks, c =>
            {
                if (c.Rank == 1) return 0; // rank 1 never calls: rank 0 waits until the abort
                c.AllGather(Marked(c, 0), "abort me");
                return 0;
            }));
            aborter.Join();
            Assert.True(e.Aborted, e.Message);
            Assert.False(e.TimedOut, e.Message);
            Assert.Contains("cancelled by the test", e.Message);
            Assert.True(rank0.IsAborted);
            Assert.True(rank0.Communicator.IsAborted);
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(8), $"the abort took {clock.Elapsed} (the deadline is 10 s)");
            Assert.Throws<CollectiveException>(() => rank0.Barrier("after abort"));
        }
        finally
        {
            foreach (var r in ranks) ((NcclCollective)r).Abort("test over"); // abort, never finalize, after a half-done collective
        }
    }

    [Fact]
    public void A_warm_communicator_serves_runs_on_new_threads_with_each_runs_deadline()
    {
        Assert.SkipUnless(GpuAvailability.HasTwoGpus, GpuAvailability.SkipReason);
        var ranks = NcclCollective.CreateAllInProcess([0, 1], TimeSpan.FromSeconds(30));
        try
        {
            for (int query = 0; query < 3; query++)
            {
                int q = query;
                var ok = CollectiveRunner.Run(ranks, c => // new threads for every "query", like a warm NCCL ring across queries
                {
                    ((IAbortableCollective)c).Deadline = TimeSpan.FromSeconds(20 + q);
                    var parts = c.AllGather(Marked(c, c.Rank, q), "warm");
                    return parts.Select((p, i) => p.Same(Marked(c, i, q))).All(b => b) && c.Deadline == TimeSpan.FromSeconds(20 + q);
                });
                Assert.All(ok, Assert.True);
            }
        }
        finally { CollectiveRunner.DisposeAll(ranks); }
    }
}
