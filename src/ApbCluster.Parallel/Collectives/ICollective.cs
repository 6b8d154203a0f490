using static TorchSharp.torch;

namespace ApbCluster.Parallel.Collectives;

/// <summary>
/// The communication seam the parallel strategies (APB, ring, Ulysses, star) are written against.
/// One instance per rank (host); rank h owns tensors on <see cref="Device"/>. Every rank must call the
/// collective operations in the same order (like NCCL); point-to-point calls pair by (sender, receiver) order.
/// <para>
/// Semantics shared by all backends: calls block until the data has arrived (receive side) or has been
/// taken (send side), so a plain <see cref="Send"/> blocks until the peer's <see cref="Receive"/>: use
/// <see cref="SendReceive"/> for ring steps. Returned tensors are new tensors on <see cref="Device"/>, created
/// on the calling thread (so they belong to its dispose scope) and owned by the caller. A missed
/// <see cref="Deadline"/> or a failure throws <see cref="ApbCluster.NativeInterop.CollectiveException"/>
/// and leaves the group unusable (NCCL aborts; the in-process group fails every waiting rank).
/// </para>
/// <para><c>what</c> labels the call in errors, logs and byte counters, e.g. "layer 3 passing block".</para>
/// </summary>
public interface ICollective : IDisposable
{
    int Rank { get; }
    int WorldSize { get; }
    Device Device { get; }
    TimeSpan Deadline { get; }

    /// <summary>Every rank contributes one tensor (same shape and dtype on all ranks); returns them in rank order.</summary>
    Tensor[] AllGather(Tensor local, string what);

    /// <summary>Sends <paramref name="t"/> to <paramref name="peer"/>; returns once the peer has received it.</summary>
    void Send(Tensor t, int peer, string what);

    /// <summary>Receives a tensor of the given shape and dtype from <paramref name="peer"/>.</summary>
    Tensor Receive(long[] shape, ScalarType dtype, int peer, string what);

    /// <summary>Ring step: sends <paramref name="send"/> to <paramref name="sendTo"/> while receiving a tensor of the
    /// same shape and dtype from <paramref name="receiveFrom"/>; no deadlock when every rank calls it at once.</summary>
    Tensor SendReceive(Tensor send, int sendTo, int receiveFrom, string what);

    /// <summary>The root's <paramref name="t"/> to every rank (others pass null and the expected shape/dtype).</summary>
    Tensor Broadcast(Tensor? t, long[] shape, ScalarType dtype, int root, string what);

    /// <summary>Chunk j goes to rank j (Ulysses); returns the chunks received, in rank order. The chunk received
    /// from rank i has the shape and dtype of this rank's own <c>chunks[i]</c> (symmetric shapes, as NCCL needs).</summary>
    Tensor[] AllToAll(Tensor[] chunks, string what);

    /// <summary>Returns once every rank has called it.</summary>
    void Barrier(string what);
}
