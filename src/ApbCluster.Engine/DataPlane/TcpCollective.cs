using System.Net.Sockets;
using ApbCluster.NativeInterop;
using ApbCluster.Parallel.Collectives;
using static TorchSharp.torch;

namespace ApbCluster.Engine.DataPlane;

/// <summary>
/// <see cref="ICollective"/> across processes over a full TCP mesh (one connection per pair of ranks),
/// the data plane of CPU hosts. Every call sends its frames from background tasks while it reads on
/// the calling thread, so symmetric exchanges never deadlock on full socket buffers; per-pair frame
/// order equals call order because every rank calls the collectives in the same order. Each receive
/// has the <see cref="Deadline"/>; a timeout, a closed connection or a bad frame throws
/// <see cref="CollectiveException"/> naming the peer rank. <see cref="Dispose"/> closes every
/// connection: a rank blocked in a call fails at once, and so do its peers (abort = close).
/// </summary>
public sealed class TcpCollective : ICollective
{
    private readonly Socket?[] _peers;
    private readonly NetworkStream?[] _streams;
    private volatile bool _disposed;

    private TcpCollective(int rank, Socket?[] peers, TimeSpan deadline)
    {
        Rank = rank;
        WorldSize = peers.Length;
        Deadline = deadline;
        _peers = peers;
        _streams = peers.Select(s => s is null ? null : new NetworkStream(s, ownsSocket: true)).ToArray();
        foreach (var s in peers.OfType<Socket>())
        {
            s.NoDelay = true;
            s.ReceiveTimeout = (int)Math.Min(int.MaxValue, deadline.TotalMilliseconds);
            s.SendTimeout = s.ReceiveTimeout;
        }
    }

    public int Rank { get; }
    public int WorldSize { get; }
    public Device Device => CPU;
    public TimeSpan Deadline { get; }

    /// <summary>
    /// Builds the mesh for one query: rank r connects to every lower rank's listener and accepts every
    /// higher rank on its own, all within <paramref name="deadline"/>.
    /// </summary>
    public static async Task<TcpCollective> ConnectAsync(DataPlaneListener listener, string queryId, int rank,
        IReadOnlyList<string> endpoints, TimeSpan deadline, CancellationToken ct)
    {
        int world = endpoints.Count;
        var peers = new Socket?[world];
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(deadline);
        var tasks = new Task[world];
        for (int p = 0; p < world; p++)
        {
            int peer = p;
            tasks[p] = peer == rank ? Task.CompletedTask
                : peer < rank ? Dial(endpoints[peer], queryId, rank, timeout.Token).ContinueWith(t => peers[peer] = t.Result, TaskContinuationOptions.OnlyOnRanToCompletion)
                : listener.WaitFor(queryId, peer).WaitAsync(timeout.Token).ContinueWith(t => { listener.Taken(queryId, peer); peers[peer] = t.Result; }, TaskContinuationOptions.OnlyOnRanToCompletion);
        }
        try
        {
            await Task.WhenAll(tasks.Select(t => t.ContinueWith(_ => { }))); // wait for all, inspect below
            var missing = Enumerable.Range(0, world).Where(p => p != rank && peers[p] is null).ToList();
            if (missing.Count > 0)
            {
                ct.ThrowIfCancellationRequested();
                var firstError = tasks.Select(t => t.Exception?.GetBaseException()).FirstOrDefault(e => e is not null and not TaskCanceledException);
                throw new CollectiveException("Connect", "data-plane mesh", rank,
                    $"rank(s) {string.Join(", ", missing)} did not connect within {deadline.TotalSeconds:0.#}s" +
                    (firstError is null ? "" : $" ({firstError.Message})"),
                    peer: missing[0], missingRanks: missing, timedOut: firstError is null, inner: firstError);
            }
            return new TcpCollective(rank, peers, deadline);
        }
        catch
        {
            foreach (var s in peers) s?.Dispose();
            listener.Forget(queryId);
            throw;
        }
    }

    private static async Task<Socket> Dial(string endpoint, string queryId, int rank, CancellationToken ct)
    {
        var colon = endpoint.LastIndexOf(':');
        var (host, port) = (endpoint[..colon], int.Parse(endpoint[(colon + 1)..]));
        while (true)
        {
            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
            try
            {
                await socket.ConnectAsync(host, port, ct);
                await socket.SendAsync(new Hello(queryId, rank).Encode(), SocketFlags.None, ct);
                return socket;
            }
            catch (SocketException) when (!ct.IsCancellationRequested)
            {
                socket.Dispose();
                await Task.Delay(100, ct); // the peer's listener may not be reachable yet
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }
    }

    public Tensor[] AllGather(Tensor local, string what)
    {
        var frame = TensorFrame.Encode(local);
        return Exchange("AllGather", what, Others().ToDictionary(p => p, _ => frame), Others(), (peer, t) => Check("AllGather", what, peer, t, local.shape, local.dtype))
            .Select((t, i) => i == Rank ? local.clone() : t!).ToArray();
    }

    public void Send(Tensor t, int peer, string what) =>
        Exchange("Send", what, new Dictionary<int, byte[]> { [CheckPeer(peer)] = TensorFrame.Encode(t) }, [], (_, x) => x);

    public Tensor Receive(long[] shape, ScalarType dtype, int peer, string what) =>
        Exchange("Receive", what, [], [CheckPeer(peer)], (p, t) => Check("Receive", what, p, t, shape, dtype))[peer]!;

    public Tensor SendReceive(Tensor send, int sendTo, int receiveFrom, string what)
    {
        if (sendTo == Rank && receiveFrom == Rank) return send.clone();
        var got = Exchange("SendReceive", what, new Dictionary<int, byte[]> { [CheckPeer(sendTo)] = TensorFrame.Encode(send) },
            [CheckPeer(receiveFrom)], (p, t) => Check("SendReceive", what, p, t, send.shape, send.dtype));
        return got[receiveFrom]!;
    }

    public Tensor Broadcast(Tensor? t, long[] shape, ScalarType dtype, int root, string what)
    {
        if (root == Rank)
        {
            var src = t ?? throw new ArgumentNullException(nameof(t), "the root must pass the tensor to broadcast");
            var frame = TensorFrame.Encode(src);
            Exchange("Broadcast", what, Others().ToDictionary(p => p, _ => frame), [], (_, x) => x);
            return src.clone();
        }
        return Exchange("Broadcast", what, [], [CheckPeer(root)], (p, x) => Check("Broadcast", what, p, x, shape, dtype))[root]!;
    }

    public Tensor[] AllToAll(Tensor[] chunks, string what)
    {
        if (chunks.Length != WorldSize) throw new ArgumentException($"{chunks.Length} chunks for {WorldSize} ranks", nameof(chunks));
        var got = Exchange("AllToAll", what, Others().ToDictionary(p => p, p => TensorFrame.Encode(chunks[p])), Others(),
            (p, t) => Check("AllToAll", what, p, t, chunks[p].shape, chunks[p].dtype));
        return got.Select((t, i) => i == Rank ? chunks[i].clone() : t!).ToArray();
    }

    public void Barrier(string what)
    {
        using var token = zeros(1, dtype: ScalarType.Byte);
        foreach (var t in AllGather(token, what)) t.Dispose();
    }

    private List<int> Others() => Enumerable.Range(0, WorldSize).Where(p => p != Rank).ToList();

    private int CheckPeer(int peer) =>
        peer >= 0 && peer < WorldSize && peer != Rank ? peer : throw new ArgumentOutOfRangeException(nameof(peer), $"peer {peer} is not another rank of {WorldSize}");

    /// <summary>Writes <paramref name="sends"/> in the background, reads one frame from each of <paramref name="receives"/> here.</summary>
    private Tensor?[] Exchange(string op, string what, Dictionary<int, byte[]> sends, IReadOnlyList<int> receives, Func<int, Tensor, Tensor> check)
    {
        if (_disposed) throw new CollectiveException(op, what, Rank, "the data plane is closed (query aborted)");
        var writes = sends.Select(kv => (Peer: kv.Key, Task: Task.Run(() => _streams[kv.Key]!.Write(kv.Value)))).ToList();
        var received = new Tensor?[WorldSize];
        try
        {
            foreach (var peer in receives)
                received[peer] = check(peer, ReadFrom(op, what, peer));
            foreach (var (peer, task) in writes)
            {
                try
                {
                    if (!task.Wait(Deadline)) throw new CollectiveException(op, what, Rank, $"sending to rank {peer} did not finish within {Deadline.TotalSeconds:0.#}s", peer, [peer], timedOut: true);
                }
                catch (AggregateException e)
                {
                    throw Wrap(op, what, peer, e.GetBaseException());
                }
            }
            return received;
        }
        catch
        {
            foreach (var t in received) t?.Dispose();
            throw;
        }
    }

    private Tensor ReadFrom(string op, string what, int peer)
    {
        try
        {
            return TensorFrame.Read(_streams[peer]!)
                ?? throw new CollectiveException(op, what, Rank, $"rank {peer} closed the data connection", peer, [peer]);
        }
        catch (Exception e) when (e is not CollectiveException)
        {
            throw Wrap(op, what, peer, e);
        }
    }

    private CollectiveException Wrap(string op, string what, int peer, Exception e)
    {
        bool timedOut = e is IOException { InnerException: SocketException { SocketErrorCode: SocketError.TimedOut } };
        var detail = _disposed ? "the data plane was closed on this rank (query aborted)"
            : timedOut ? $"no data from rank {peer} within the {Deadline.TotalSeconds:0.#}s deadline"
            : $"data connection to rank {peer} failed: {e.Message}";
        return new CollectiveException(op, what, Rank, detail, peer, [peer], timedOut, e);
    }

    private Tensor Check(string op, string what, int peer, Tensor t, long[] shape, ScalarType dtype)
    {
        if (t.dtype == dtype && t.shape.SequenceEqual(shape)) return t;
        var got = $"{t.dtype}[{string.Join(",", t.shape)}]";
        t.Dispose();
        throw new CollectiveException(op, what, Rank, $"rank {peer} sent {got}, expected {dtype}[{string.Join(",", shape)}]", peer);
    }

    /// <summary>Closes every connection (abort): blocked calls here and on the peers fail at once.</summary>
    public void Dispose()
    {
        _disposed = true;
        foreach (var s in _peers) s?.Dispose();
        foreach (var s in _streams) s?.Dispose();
    }
}
