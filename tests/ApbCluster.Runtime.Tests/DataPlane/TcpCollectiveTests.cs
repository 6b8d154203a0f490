using ApbCluster.NativeInterop;
using ApbCluster.Parallel.Collectives;
using ApbCluster.Engine.DataPlane;
using static TorchSharp.torch;

namespace ApbCluster.Runtime.Tests.DataPlane;

/// <summary>The TCP data plane: three ranks on loopback listeners, each on its own thread.</summary>
public sealed class TcpCollectiveTests : IDisposable
{
    private readonly DataPlaneListener[] _listeners = Enumerable.Range(0, 3).Select(_ => new DataPlaneListener("127.0.0.1", "127.0.0.1", 0)).ToArray();

    private T[] OnEveryRank<T>(string query, TimeSpan deadline, Func<ICollective, T> body, int ranks = 3)
    {
        var endpoints = _listeners.Take(ranks).Select(l => l.Endpoint).ToList();
        var tasks = Enumerable.Range(0, ranks).Select(r => Task.Run(async () =>
        {
            using var c = await TcpCollective.ConnectAsync(_listeners[r], query, r, endpoints, deadline, CancellationToken.None);
            return body(c);
        })).ToArray();
        return Task.WhenAll(tasks).GetAwaiter().GetResult();
    }

    [Fact]
    public void Collectives_move_tensors_exactly_between_ranks()
    {
        var results = OnEveryRank("q1", TimeSpan.FromSeconds(10), c =>
        {
            using var local = full(new long[] { 2, 3 }, c.Rank + 1f);
            var gathered = c.AllGather(local, "gather").Select(t => t.sum().item<float>()).ToArray();
            using var ring = c.SendReceive(local, c.NextRank(), c.PreviousRank(), "ring");
            using var root = c.Rank == 2 ? arange(5, dtype: ScalarType.Int64) : null;
            using var bcast = c.Broadcast(root, [5], ScalarType.Int64, 2, "bcast");
            var chunks = Enumerable.Range(0, 3).Select(j => full(new long[] { 1 }, 10f * c.Rank + j)).ToArray();
            var a2a = c.AllToAll(chunks, "a2a").Select(t => t.item<float>()).ToArray();
            c.Barrier("done");
            using var big = c.Rank == 0 ? randn(1 << 20) : null; // 4 MiB: frames larger than socket buffers
            using var bigGot = c.Broadcast(big, [1 << 20], ScalarType.Float32, 0, "big");
            return (gathered, Ring: ring[0, 0].item<float>(), Bcast: bcast.sum().item<long>(), a2a, BigSum: bigGot.sum().item<float>());
        });
        foreach (var (r, i) in results.Select((r, i) => (r, i)))
        {
            Assert.Equal([6f, 12f, 18f], r.gathered);
            Assert.Equal((i + 2) % 3 + 1f, r.Ring);
            Assert.Equal(10, r.Bcast);
            Assert.Equal([0f + i, 10f + i, 20f + i], r.a2a);
            Assert.Equal(results[0].BigSum, r.BigSum);
        }
    }

    [Fact]
    public void A_silent_peer_fails_the_receive_at_the_deadline_naming_it()
    {
        var endpoints = _listeners.Take(2).Select(l => l.Endpoint).ToList();
        var silent = Task.Run(() => TcpCollective.ConnectAsync(_listeners[1], "q2", 1, endpoints, TimeSpan.FromSeconds(5), CancellationToken.None));
        using var waiting = TcpCollective.ConnectAsync(_listeners[0], "q2", 0, endpoints, TimeSpan.FromMilliseconds(500), CancellationToken.None).GetAwaiter().GetResult();
        using var peer = silent.GetAwaiter().GetResult();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var e = Assert.Throws<CollectiveException>(() => waiting.Receive([1], ScalarType.Float32, 1, "layer 0 passing block"));
        Assert.Equal(1, e.Peer);
        Assert.True(e.TimedOut);
        Assert.Contains("layer 0 passing block", e.Message);
        Assert.InRange(clock.Elapsed.TotalSeconds, 0.3, 3);
    }

    [Fact]
    public void A_peer_that_disconnects_fails_the_waiting_rank_at_once()
    {
        var endpoints = _listeners.Take(2).Select(l => l.Endpoint).ToList();
        var other = Task.Run(() => TcpCollective.ConnectAsync(_listeners[1], "q3", 1, endpoints, TimeSpan.FromSeconds(5), CancellationToken.None));
        using var waiting = TcpCollective.ConnectAsync(_listeners[0], "q3", 0, endpoints, TimeSpan.FromSeconds(30), CancellationToken.None).GetAwaiter().GetResult();
        var peer = other.GetAwaiter().GetResult();
        _ = Task.Delay(200).ContinueWith(_ => peer.Dispose());
        var clock = System.Diagnostics.Stopwatch.StartNew();
        using var local = ones(4);
        var e = Assert.Throws<CollectiveException>(() => waiting.AllGather(local, "gather"));
        Assert.Equal(1, e.Peer);
        Assert.False(e.TimedOut);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"took {clock.Elapsed}");
    }

    [Fact]
    public void A_rank_that_never_connects_fails_the_mesh_naming_it()
    {
        var endpoints = _listeners.Take(2).Select(l => l.Endpoint).ToList();
        var e = Assert.ThrowsAsync<CollectiveException>(() =>
            TcpCollective.ConnectAsync(_listeners[0], "q4", 0, endpoints, TimeSpan.FromMilliseconds(500), CancellationToken.None)).GetAwaiter().GetResult();
        Assert.Equal([1], e.MissingRanks);
    }

    [Fact]
    public void A_shape_mismatch_is_reported_not_misread()
    {
        var endpoints = _listeners.Take(2).Select(l => l.Endpoint).ToList();
        var sender = Task.Run(async () =>
        {
            using var c = await TcpCollective.ConnectAsync(_listeners[1], "q5", 1, endpoints, TimeSpan.FromSeconds(5), CancellationToken.None);
            using var t = zeros(3);
            c.Send(t, 0, "x");
            await Task.Delay(500);
        });
        using var receiver = TcpCollective.ConnectAsync(_listeners[0], "q5", 0, endpoints, TimeSpan.FromSeconds(5), CancellationToken.None).GetAwaiter().GetResult();
        var e = Assert.Throws<CollectiveException>(() => receiver.Receive([4], ScalarType.Float32, 1, "x"));
        Assert.Contains("expected Float32[4]", e.Message);
        sender.GetAwaiter().GetResult();
    }

    public void Dispose()
    {
        foreach (var l in _listeners) l.Dispose();
    }
}
