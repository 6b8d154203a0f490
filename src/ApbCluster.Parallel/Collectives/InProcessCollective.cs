using ApbCluster.NativeInterop;
using static TorchSharp.torch;

namespace ApbCluster.Parallel.Collectives;

/// <summary>One rank of an <see cref="InProcessCollectiveGroup"/>. Use each instance from one thread.</summary>
internal sealed class InProcessCollective(Rendezvous hub, int rank, int worldSize, Device device, TimeSpan deadline) : ICollective
{
    private long _collectiveSeq;
    private readonly long[] _sendSeq = new long[worldSize];
    private readonly long[] _recvSeq = new long[worldSize];
    private readonly int[] _everyone = Enumerable.Range(0, worldSize).ToArray();

    public int Rank => rank;
    public int WorldSize => worldSize;
    public Device Device => device;
    public TimeSpan Deadline => deadline;

    internal void AbortGroup(string reason) => hub.Abort(reason);

    public Tensor[] AllGather(Tensor local, string what)
    {
        var call = NewCall("AllGather", what, null);
        return Collective(call, local, items => items.Select((item, i) =>
        {
            var t = (Tensor)item!;
            if (!t.shape.SequenceEqual(local.shape) || t.dtype != local.dtype)
                throw hub.Fail(call, $"rank {i} contributed {Describe(t)}, this rank {Describe(local)}: all ranks must match");
            return Adopt(t);
        }).ToArray());
    }

    public Tensor Broadcast(Tensor? t, long[] shape, ScalarType dtype, int root, string what)
    {
        CheckPeer(root, allowSelf: true);
        var call = NewCall("Broadcast", what, root == rank ? null : root);
        if (root == rank && t is null) throw hub.Fail(call, "the root must pass the tensor to broadcast");
        return Collective(call, root == rank ? t : null, items =>
        {
            var src = (Tensor?)items[root] ?? throw hub.Fail(call, $"root {root} passed no tensor");
            CheckExpected(call, src, shape, dtype, root);
            return Adopt(src);
        });
    }

    public Tensor[] AllToAll(Tensor[] chunks, string what)
    {
        var call = NewCall("AllToAll", what, null);
        if (chunks.Length != worldSize) throw hub.Fail(call, $"{chunks.Length} chunks for {worldSize} ranks");
        return Collective(call, chunks, items => items.Select((item, i) =>
        {
            var fromI = ((Tensor[])item!)[rank];
            CheckExpected(call, fromI, chunks[i].shape, chunks[i].dtype, i);
            return Adopt(fromI);
        }).ToArray());
    }

    public void Barrier(string what) => Collective<object?>(NewCall("Barrier", what, null), null, _ => null);

    public void Send(Tensor t, int peer, string what)
    {
        CheckPeer(peer, allowSelf: false);
        var call = NewCall("Send", what, peer);
        var key = new SlotKey(rank, peer, _sendSeq[peer]++);
        hub.Arrive(key, [rank, peer], call, t);
        FinishSend(key, call);
    }

    public Tensor Receive(long[] shape, ScalarType dtype, int peer, string what)
    {
        CheckPeer(peer, allowSelf: false);
        var call = NewCall("Receive", what, peer);
        return ReceiveCore(call, shape, dtype, peer);
    }

    public Tensor SendReceive(Tensor send, int sendTo, int receiveFrom, string what)
    {
        CheckPeer(sendTo, allowSelf: true);
        CheckPeer(receiveFrom, allowSelf: true);
        if ((sendTo == rank) != (receiveFrom == rank))
            throw new ArgumentException("a rank can only exchange with itself on both sides (world size 1)");
        if (sendTo == rank) return send.clone();
        var call = NewCall("SendReceive", what, sendTo == receiveFrom ? sendTo : null);
        // Post the send first, without waiting, so every rank of the ring can reach its receive.
        var sendKey = new SlotKey(rank, sendTo, _sendSeq[sendTo]++);
        hub.Arrive(sendKey, [rank, sendTo], call, send);
        var received = ReceiveCore(call with { Peer = receiveFrom }, send.shape, send.dtype, receiveFrom);
        FinishSend(sendKey, call with { Peer = sendTo });
        return received;
    }

    public void Dispose() { }

    private Tensor ReceiveCore(Call call, long[] shape, ScalarType dtype, int peer)
    {
        var key = new SlotKey(peer, rank, _recvSeq[peer]++);
        hub.Arrive(key, [peer, rank], call, null);
        try
        {
            var src = (Tensor)hub.AwaitArrivals(key, call)[0]!;
            CheckExpected(call, src, shape, dtype, peer);
            return Guard(call, () => Adopt(src));
        }
        finally { hub.Depart(key, rank); }
    }

    private void FinishSend(SlotKey key, Call call)
    {
        hub.AwaitArrivals(key, call);
        hub.Depart(key, rank);
        hub.AwaitDepartures(key, call); // the receiver has copied: the caller may now reuse its tensor
    }

    /// <summary>Arrive with an item, read everyone's, depart, wait until nobody reads ours any more.</summary>
    private TResult Collective<TResult>(Call call, object? item, Func<object?[], TResult> consume)
    {
        var key = SlotKey.ForCollective(_collectiveSeq++);
        hub.Arrive(key, _everyone, call, item);
        TResult result;
        try { result = Guard(call, () => consume(hub.AwaitArrivals(key, call))); }
        finally { hub.Depart(key, rank); }
        hub.AwaitDepartures(key, call);
        return result;
    }

    /// <summary>A copy made on this thread, on this rank's device.</summary>
    private Tensor Adopt(Tensor src) =>
        src.device_type == device.type && src.device_index == device.index ? src.clone() : src.to(device);

    /// <summary>An unexpected error while copying (out of memory, ...) aborts the group so no rank waits forever.</summary>
    private T Guard<T>(Call call, Func<T> f)
    {
        try { return f(); }
        catch (CollectiveException) { throw; }
        catch (Exception e) { throw hub.Fail(call, e.Message, inner: e); }
    }

    private void CheckExpected(Call call, Tensor src, long[] shape, ScalarType dtype, int from)
    {
        if (!src.shape.SequenceEqual(shape) || src.dtype != dtype)
            throw hub.Fail(call, $"rank {from} sent {Describe(src)}, expected {TorchTensors.ShapeText(shape)} {dtype}");
    }

    private void CheckPeer(int peer, bool allowSelf)
    {
        if (peer < 0 || peer >= worldSize || (!allowSelf && peer == rank))
            throw new ArgumentOutOfRangeException(nameof(peer), $"rank {rank}: {peer} is not a valid peer in a group of {worldSize}");
    }

    private Call NewCall(string op, string what, int? peer) => new(op, what, rank, peer, deadline);

    private static string Describe(Tensor t) => $"{TorchTensors.ShapeText(t.shape)} {t.dtype}";
}
