using ApbCluster.Model.Forward;
using ApbCluster.Parallel.Collectives;
using static TorchSharp.torch;

namespace ApbCluster.Parallel.Phase2;

/// <summary>
/// A collective whose every call marks the batched sequence away (<see cref="DecodeBatcher.Seat.Away"/>) while it waits
/// for other hosts, so the host's other queries batch without waiting for this one's peers. Disposing it leaves the
/// inner collective to its owner.
/// </summary>
internal sealed class SeatedCollective(ICollective inner, DecodeBatcher.Seat seat) : ICollective
{
    public int Rank => inner.Rank;
    public int WorldSize => inner.WorldSize;
    public Device Device => inner.Device;
    public TimeSpan Deadline => inner.Deadline;

    public Tensor[] AllGather(Tensor local, string what)
    {
        using var _ = seat.Away();
        return inner.AllGather(local, what);
    }

    public void Send(Tensor t, int peer, string what)
    {
        using var _ = seat.Away();
        inner.Send(t, peer, what);
    }

    public Tensor Receive(long[] shape, ScalarType dtype, int peer, string what)
    {
        using var _ = seat.Away();
        return inner.Receive(shape, dtype, peer, what);
    }

    public Tensor SendReceive(Tensor send, int sendTo, int receiveFrom, string what)
    {
        using var _ = seat.Away();
        return inner.SendReceive(send, sendTo, receiveFrom, what);
    }

    public Tensor Broadcast(Tensor? t, long[] shape, ScalarType dtype, int root, string what)
    {
        using var _ = seat.Away();
        return inner.Broadcast(t, shape, dtype, root, what);
    }

    public Tensor[] AllToAll(Tensor[] chunks, string what)
    {
        using var _ = seat.Away();
        return inner.AllToAll(chunks, what);
    }

    public void Barrier(string what)
    {
        using var _ = seat.Away();
        inner.Barrier(what);
    }

    public void Dispose() { }
}
