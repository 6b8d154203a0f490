using ApbCluster.NativeInterop;
using static TorchSharp.torch;

namespace ApbCluster.Parallel.Collectives;

/// <summary>Decorator that records each successful call's payload in a <see cref="CollectiveTraffic"/>.</summary>
public sealed class CountingCollective(ICollective inner, CollectiveTraffic traffic) : ICollective, IDecoratedCollective
{
    public int Rank => inner.Rank;
    public int WorldSize => inner.WorldSize;
    public Device Device => inner.Device;
    public TimeSpan Deadline => inner.Deadline;
    public CollectiveTraffic Traffic => traffic;
    /// <summary>The collective being counted.</summary>
    public ICollective Inner => inner;

    public Tensor[] AllGather(Tensor local, string what)
    {
        var result = inner.AllGather(local, what);
        var others = Bytes(local) * (WorldSize - 1);
        traffic.Add("AllGather", what, others, others);
        return result;
    }

    public void Send(Tensor t, int peer, string what)
    {
        inner.Send(t, peer, what);
        traffic.Add("Send", what, Bytes(t), 0);
    }

    public Tensor Receive(long[] shape, ScalarType dtype, int peer, string what)
    {
        var t = inner.Receive(shape, dtype, peer, what);
        traffic.Add("Receive", what, 0, Bytes(t));
        return t;
    }

    public Tensor SendReceive(Tensor send, int sendTo, int receiveFrom, string what)
    {
        var t = inner.SendReceive(send, sendTo, receiveFrom, what);
        var moved = sendTo == Rank ? 0 : Bytes(send);
        traffic.Add("SendReceive", what, moved, moved);
        return t;
    }

    public Tensor Broadcast(Tensor? t, long[] shape, ScalarType dtype, int root, string what)
    {
        var result = inner.Broadcast(t, shape, dtype, root, what);
        if (root == Rank) traffic.Add("Broadcast", what, Bytes(result) * (WorldSize - 1), 0);
        else traffic.Add("Broadcast", what, 0, Bytes(result));
        return result;
    }

    public Tensor[] AllToAll(Tensor[] chunks, string what)
    {
        var result = inner.AllToAll(chunks, what);
        long sent = chunks.Where((_, j) => j != Rank).Sum(Bytes);
        long received = result.Where((_, i) => i != Rank).Sum(Bytes);
        traffic.Add("AllToAll", what, sent, received);
        return result;
    }

    public void Barrier(string what)
    {
        inner.Barrier(what);
        traffic.Add("Barrier", what, 0, 0);
    }

    public void Dispose() => inner.Dispose();

    private static long Bytes(Tensor t) => TorchTensors.ByteCount(t);
}
