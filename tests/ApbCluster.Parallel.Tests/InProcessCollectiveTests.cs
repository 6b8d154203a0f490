using ApbCluster.NativeInterop;
using ApbCluster.Parallel.Collectives;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace ApbCluster.Parallel.Tests;

public class InProcessCollectiveTests
{
    private static readonly TimeSpan Generous = TimeSpan.FromSeconds(30);

    public InProcessCollectiveTests() => TorchRuntime.EnsureLoaded("cpu");

    public static TheoryData<int> Hosts => new(1, 2, 3, 4, 5, 6, 7, 8);

    /// <summary>A tensor whose values encode (rank, slot) so a misrouted transfer shows.</summary>
    private static Tensor Marked(int rank, int slot = 0, long n = 6) =>
        arange(n, ScalarType.Float32) + 100f * rank + 10_000f * slot;

    [Theory, MemberData(nameof(Hosts))]
    public void AllGather_returns_every_rank_in_order(int hosts)
    {
        var results = InProcessCollectiveGroup.Run(hosts, Generous, c =>
        {
            var parts = c.AllGather(Marked(c.Rank).reshape(2, 3), "test gather");
            return parts.Select((p, i) => p.shape.SequenceEqual(new long[] { 2, 3 }) && p.reshape(-1).Same(Marked(i))).ToArray();
        });
        Assert.All(results, r => Assert.All(r, Assert.True));
    }

    [Theory, MemberData(nameof(Hosts))]
    public void AllGatherConcat_concatenates_in_rank_order(int hosts)
    {
        var results = InProcessCollectiveGroup.Run(hosts, Generous, c =>
            c.AllGatherConcat(Marked(c.Rank), 0, "concat").Same(cat(Enumerable.Range(0, hosts).Select(i => Marked(i)).ToArray(), 0)));
        Assert.All(results, Assert.True);
    }

    [Theory, MemberData(nameof(Hosts))]
    public void Broadcast_copies_the_root_tensor_everywhere(int hosts)
    {
        int root = hosts - 1;
        var results = InProcessCollectiveGroup.Run(hosts, Generous, c =>
        {
            var mine = c.Rank == root ? Marked(root) : null;
            return c.Broadcast(mine, [6], ScalarType.Float32, root, "question tokens").Same(Marked(root));
        });
        Assert.All(results, Assert.True);
    }

    [Theory, MemberData(nameof(Hosts))]
    public void SendReceive_rotates_blocks_around_the_ring(int hosts)
    {
        var results = InProcessCollectiveGroup.Run(hosts, Generous, c =>
        {
            // After H-1 steps each rank has seen every other rank's block exactly once (ring attention's pattern).
            var seen = new List<int>();
            var block = Marked(c.Rank);
            for (int step = 0; step < hosts - 1; step++)
            {
                block = c.SendReceive(block, c.NextRank(), c.PreviousRank(), $"ring step {step}");
                seen.Add((int)(block[0].item<float>() / 100));
            }
            return seen;
        });
        for (int r = 0; r < hosts; r++)
            Assert.Equal(Enumerable.Range(1, hosts - 1).Select(s => (r - s + hosts) % hosts), results[r]);
    }

    [Theory, MemberData(nameof(Hosts))]
    public void Send_and_Receive_pass_a_value_down_the_chain(int hosts)
    {
        // Rank 0 starts; each rank receives from its left, adds its rank, sends right (APB's passing order).
        var results = InProcessCollectiveGroup.Run(hosts, Generous, c =>
        {
            var acc = c.Rank == 0 ? zeros(3) : c.Receive([3], ScalarType.Float32, c.Rank - 1, "chain");
            acc = acc + c.Rank;
            if (c.Rank < hosts - 1) c.Send(acc, c.Rank + 1, "chain");
            return acc[0].item<float>();
        });
        Assert.Equal(Enumerable.Range(0, hosts).Select(r => (float)Enumerable.Range(0, r + 1).Sum()), results);
    }

    [Theory, MemberData(nameof(Hosts))]
    public void AllToAll_delivers_chunk_j_to_rank_j(int hosts)
    {
        var results = InProcessCollectiveGroup.Run(hosts, Generous, c =>
        {
            var chunks = Enumerable.Range(0, hosts).Select(j => Marked(c.Rank, slot: j)).ToArray();
            var got = c.AllToAll(chunks, "ulysses heads");
            return got.Select((g, i) => g.Same(Marked(i, slot: c.Rank))).ToArray();
        });
        Assert.All(results, r => Assert.All(r, Assert.True));
    }

    [Theory, MemberData(nameof(Hosts))]
    public void Many_collectives_in_a_row_stay_matched(int hosts)
    {
        var results = InProcessCollectiveGroup.Run(hosts, Generous, c =>
        {
            float sum = 0;
            for (int layer = 0; layer < 20; layer++)
            {
                c.Barrier($"layer {layer} start");
                sum += c.AllGather(full(1, (float)(layer + c.Rank)), $"layer {layer}").Sum(t => t.item<float>());
            }
            return sum;
        });
        var expected = Enumerable.Range(0, 20).Sum(l => Enumerable.Range(0, hosts).Sum(r => (float)(l + r)));
        Assert.All(results, s => Assert.Equal(expected, s));
    }

    [Fact]
    public void Received_tensors_survive_the_sender_disposing_its_own()
    {
        var results = InProcessCollectiveGroup.Run(2, Generous, c =>
        {
            if (c.Rank == 0)
            {
                using (var scope = NewDisposeScope())
                {
                    var t = Marked(0);
                    c.Send(t, 1, "scoped");
                } // t is disposed here, as a strategy's per-layer scope would do
                c.Barrier("after dispose");
                return true;
            }
            var got = c.Receive([6], ScalarType.Float32, 0, "scoped");
            c.Barrier("after dispose");
            return got.Same(Marked(0));
        });
        Assert.All(results, Assert.True);
    }

    [Fact]
    public void A_rank_that_never_arrives_is_named_within_the_deadline()
    {
        var deadline = TimeSpan.FromMilliseconds(500);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var e = Assert.Throws<CollectiveException>(() => InProcessCollectiveGroup.Run(3, deadline, c =>
        {
            if (c.Rank == 2) return 0; // never joins the all-gather
            c.AllGather(ones(2), "layer 0 passing block");
            return 1;
        }));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"took {clock.Elapsed}");
        Assert.True(e.TimedOut);
        Assert.Equal([2], e.MissingRanks);
        Assert.Equal("AllGather", e.Operation);
        Assert.Equal("layer 0 passing block", e.What);
        Assert.Contains("[2] never arrived", e.Message);
    }

    [Fact]
    public void A_missing_receiver_is_named_on_the_sender()
    {
        var e = Assert.Throws<CollectiveException>(() => InProcessCollectiveGroup.Run(2, TimeSpan.FromMilliseconds(300), c =>
        {
            if (c.Rank == 0) c.Send(ones(2), 1, "kv block");
            return 0;
        }));
        Assert.Equal(1, e.Peer);
        Assert.Equal([1], e.MissingRanks);
        Assert.Equal("Send", e.Operation);
    }

    [Fact]
    public void An_exception_on_one_rank_propagates_and_releases_the_others_quickly()
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var e = Assert.Throws<InvalidOperationException>(() => InProcessCollectiveGroup.Run(4, TimeSpan.FromSeconds(60), c =>
        {
            if (c.Rank == 1) throw new InvalidOperationException("compressor failed on rank 1");
            c.Barrier("never completes");
            return 0;
        }));
        Assert.Equal("compressor failed on rank 1", e.Message);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"other ranks waited out the deadline: {clock.Elapsed}");
    }

    [Fact]
    public void Ranks_disagreeing_on_the_collective_order_fail_clearly()
    {
        var e = Assert.Throws<CollectiveException>(() => InProcessCollectiveGroup.Run(2, Generous, c =>
        {
            if (c.Rank == 0) c.AllGather(ones(1), "gather");
            else c.Barrier("barrier");
            return 0;
        }));
        Assert.Contains("disagree on the order", e.Message);
    }

    [Fact]
    public void A_shape_mismatch_is_reported_instead_of_corrupting()
    {
        var e = Assert.Throws<CollectiveException>(() => InProcessCollectiveGroup.Run(2, Generous, c =>
        {
            if (c.Rank == 0) c.Send(ones(4), 1, "block");
            else c.Receive([5], ScalarType.Float32, 0, "block");
            return 0;
        }));
        Assert.Contains("expected [5]", e.Message);
    }

    [Fact]
    public void Traffic_counts_the_bytes_each_operation_moved()
    {
        var traffic = new CollectiveTraffic();
        const int hosts = 4;
        InProcessCollectiveGroup.Run(hosts, Generous, c0 =>
        {
            var c = c0.WithTraffic(traffic);
            c.AllGather(ones(8, ScalarType.BFloat16), "layer 0 passing"); // 16 bytes per rank
            c.SendReceive(ones(4), c.NextRank(), c.PreviousRank(), "ring");  // 16 bytes
            c.Broadcast(c.Rank == 0 ? ones(2, ScalarType.Int64) : null, [2], ScalarType.Int64, 0, "token"); // 16 bytes
            return 0;
        });
        var s = traffic.Snapshot().ToDictionary(e => e.Operation);
        Assert.Equal(hosts * 16L * (hosts - 1), s["AllGather"].BytesSent);
        Assert.Equal(hosts * 16L * (hosts - 1), s["AllGather"].BytesReceived);
        Assert.Equal(hosts, s["AllGather"].Calls);
        Assert.Equal(hosts * 16L, s["SendReceive"].BytesSent);
        Assert.Equal(16L * (hosts - 1), s["Broadcast"].BytesSent);
        Assert.Equal(16L * (hosts - 1), s["Broadcast"].BytesReceived);
        Assert.Equal((hosts * 16L * (hosts - 1), hosts * 16L * (hosts - 1)), traffic.Total(e => e.What.Contains("passing")));
    }
}
