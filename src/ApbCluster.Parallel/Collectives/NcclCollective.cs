using ApbCluster.NativeInterop;
using ApbCluster.NativeInterop.Cuda;
using ApbCluster.NativeInterop.Nccl;
using TorchSharp;
using static TorchSharp.torch;

namespace ApbCluster.Parallel.Collectives;

/// <summary>
/// <see cref="ICollective"/> over one NCCL communicator rank (one GPU). All work runs on the legacy default
/// stream, like TorchSharp's kernels, and every call waits under the NCCL watchdog, so results are ready
/// (and inputs free to reuse) on return. Inputs must be on this rank's GPU; non-contiguous ones are copied.
/// <see cref="Dispose"/> finalizes (every rank must dispose, like NCCL's collective teardown);
/// <see cref="Abort"/> releases locally, and <see cref="RequestAbort"/> is the way to stop it from another thread.
/// </summary>
public sealed class NcclCollective : IAbortableCollective
{
    private readonly NcclCommunicator _comm;

    public NcclCollective(NcclCommunicator comm)
    {
        _comm = comm;
        Device = new Device(DeviceType.CUDA, comm.Device);
    }

    public int Rank => _comm.Rank;
    public int WorldSize => _comm.Size;
    public Device Device { get; }
    public NcclCommunicator Communicator => _comm;

    public TimeSpan Deadline
    {
        get => _comm.Deadline;
        set => _comm.Deadline = value;
    }

    public bool IsAborted => _comm.IsAborted || _comm.AbortRequested;

    /// <summary>Joins communicator <paramref name="id"/> (made by rank 0, carried to the others in a message);
    /// <paramref name="ct"/> aborts a join that is still waiting for the other ranks.</summary>
    public static NcclCollective Join(NcclUniqueId id, int rank, int worldSize, int device, TimeSpan deadline, CancellationToken ct = default) =>
        new(NcclCommunicator.Create(id, rank, worldSize, device, deadline, ct));

    public void RequestAbort(string reason) => _comm.RequestAbort(reason);

    /// <summary>ncclCommAbort now, then frees the watchdog's event; owner thread only.</summary>
    public void Abort(string reason)
    {
        CudaRuntime.SetDevice(_comm.Device); // may run on a thread that never used this GPU (a dropped idle ring)
        _comm.Abort(reason);
        _comm.Dispose(); // the handle is gone: this only releases the watchdog's CUDA event
    }

    /// <summary>Several GPUs driven by one process, rank i on devices[i]; run the ranks with <see cref="CollectiveRunner"/>.</summary>
    public static ICollective[] CreateAllInProcess(int[] devices, TimeSpan deadline) =>
        NcclCommunicator.CreateAllInProcess(devices, deadline).Select(c => (ICollective)new NcclCollective(c)).ToArray();

    public Tensor[] AllGather(Tensor local, string what)
    {
        using var src = Contiguous(local);
        using var gathered = empty([WorldSize, .. local.shape], local.dtype, Device);
        _comm.AllGather(src, gathered, what);
        return Enumerable.Range(0, WorldSize).Select(i => gathered[i]).ToArray(); // views keep the storage alive
    }

    public void Send(Tensor t, int peer, string what)
    {
        using var src = Contiguous(t);
        _comm.SendRecv([PeerTransfer.SendTo(src, peer)], "Send", what, peer);
    }

    public Tensor Receive(long[] shape, ScalarType dtype, int peer, string what)
    {
        var buffer = empty(shape, dtype, Device);
        return Complete(buffer, () => _comm.SendRecv([PeerTransfer.ReceiveFrom(buffer, peer)], "Receive", what, peer));
    }

    public Tensor SendReceive(Tensor send, int sendTo, int receiveFrom, string what)
    {
        if (sendTo == Rank && receiveFrom == Rank) return send.clone();
        using var src = Contiguous(send);
        var buffer = empty(send.shape, send.dtype, Device);
        return Complete(buffer, () => _comm.SendRecv(
            [PeerTransfer.SendTo(src, sendTo), PeerTransfer.ReceiveFrom(buffer, receiveFrom)],
            "SendReceive", what, sendTo == receiveFrom ? sendTo : null));
    }

    public Tensor Broadcast(Tensor? t, long[] shape, ScalarType dtype, int root, string what)
    {
        // NCCL broadcasts in place: the root sends a copy so the caller's tensor and the result stay separate.
        var buffer = root == Rank
            ? (t ?? throw new ArgumentNullException(nameof(t), "the root must pass the tensor to broadcast")).contiguous().clone()
            : empty(shape, dtype, Device);
        return Complete(buffer, () => _comm.Broadcast(buffer, root, what));
    }

    public Tensor[] AllToAll(Tensor[] chunks, string what)
    {
        if (chunks.Length != WorldSize) throw new ArgumentException($"{chunks.Length} chunks for {WorldSize} ranks", nameof(chunks));
        var sources = chunks.Select(Contiguous).ToArray();
        var received = chunks.Select((c, j) => j == Rank ? c.clone() : empty(c.shape, c.dtype, Device)).ToArray();
        try
        {
            var transfers = new List<PeerTransfer>();
            for (int j = 0; j < WorldSize; j++)
            {
                if (j == Rank) continue; // our own chunk is the clone above: no self send/recv
                transfers.Add(PeerTransfer.SendTo(sources[j], j));
                transfers.Add(PeerTransfer.ReceiveFrom(received[j], j));
            }
            if (transfers.Count > 0) _comm.SendRecv(transfers, "AllToAll", what);
            return received;
        }
        catch
        {
            foreach (var r in received) r.Dispose();
            throw;
        }
        finally
        {
            foreach (var s in sources) s.Dispose();
        }
    }

    public void Barrier(string what)
    {
        using var one = ones(1, ScalarType.Int32, Device);
        _comm.AllReduce(one, one, NcclRedOp.Sum, what);
    }

    public void Dispose() => _comm.Dispose();

    /// <summary>A contiguous handle to <paramref name="t"/> (itself as a new handle when already contiguous), on our GPU.</summary>
    private Tensor Contiguous(Tensor t)
    {
        if (t.device_type != DeviceType.CUDA || t.device_index != _comm.Device)
            throw new ArgumentException($"rank {Rank}: tensor is on {t.device}, this rank's GPU is {Device}");
        return t.contiguous();
    }

    private static Tensor Complete(Tensor buffer, Action transfer)
    {
        try { transfer(); return buffer; }
        catch { buffer.Dispose(); throw; }
    }
}
