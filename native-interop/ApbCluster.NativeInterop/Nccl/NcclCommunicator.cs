using System.Diagnostics;
using ApbCluster.NativeInterop.Cuda;
using TorchSharp;
using static TorchSharp.torch;

namespace ApbCluster.NativeInterop.Nccl;

/// <summary>
/// One rank of a non-blocking NCCL communicator bound to one CUDA device. Every operation waits for
/// completion under the watchdog (see <see cref="NcclWatchdog"/>), so when it returns the buffers are
/// ready; on failure or timeout the communicator is aborted and a <see cref="CollectiveException"/> is thrown.
/// Use it from one thread at a time (the owner thread; it may change between uses, e.g. a communicator kept
/// warm across queries). The one call meant for other threads is <see cref="RequestAbort"/>: the owner
/// thread then aborts at its next poll (within about a millisecond while it waits in a collective, or at
/// its next call), so the handle is never freed under a thread that is using it.
/// </summary>
public sealed partial class NcclCommunicator : IDisposable
{
    /// <summary>The stream TorchSharp's kernels run on (the legacy default stream, 0): NCCL work waits for it.</summary>
    public static readonly IntPtr TorchStream = IntPtr.Zero;

    private readonly NcclWatchdog _watchdog;
    private readonly CudaEvent _inputsReady;
    private volatile string? _abortReason;
    private volatile string? _abortRequest;

    public int Rank { get; }
    public int Size { get; }
    public int Device { get; }

    /// <summary>The watchdog's bound on every wait. Settable between uses (a warm communicator serves queries
    /// that each carry their own collective timeout); set it from the owner thread.</summary>
    public TimeSpan Deadline { get; set; }

    public bool IsAborted => _abortReason != null;

    /// <summary>Another thread asked for an abort (<see cref="RequestAbort"/>) that the owner thread has not
    /// carried out yet; the next operation (or the current wait) aborts.</summary>
    public bool AbortRequested => _abortRequest != null;
    internal IntPtr Handle { get; private set; }

    /// <summary>This communicator's own non-blocking stream (as PyTorch's ProcessGroupNCCL does): NCCL kernels
    /// on the legacy default stream took part in its implicit device-wide synchronisation and could stall a
    /// ring exchange on two GPUs of one process. Each call orders it after the torch stream by an event, and
    /// returns only once the watchdog saw it complete, so later torch kernels read finished results.</summary>
    internal IntPtr Stream { get; private set; }

    private NcclCommunicator(IntPtr handle, int rank, int size, int device, TimeSpan deadline)
    {
        Handle = handle;
        Rank = rank;
        Size = size;
        Device = device;
        Deadline = deadline;
        CudaRuntime.Check(CudaNative.StreamCreateWithFlags(out var stream, CudaNative.StreamNonBlocking), "cudaStreamCreateWithFlags");
        Stream = stream;
        _inputsReady = new CudaEvent();
        _watchdog = new NcclWatchdog(this);
    }

    /// <summary>A new unique id (rank 0 makes it, then sends <see cref="NcclUniqueId.ToBytes"/> to the others).</summary>
    public static NcclUniqueId CreateUniqueId()
    {
        var r = NcclNative.GetUniqueId(out var id);
        if (r != NcclResult.Success) throw new InvalidOperationException($"ncclGetUniqueId failed: {NcclNative.ErrorString(r)}");
        return id;
    }

    /// <summary>Joins the communicator <paramref name="id"/> as <paramref name="rank"/> of <paramref name="size"/> on
    /// CUDA device <paramref name="device"/>. Blocks until every rank has joined, or the deadline passes, or
    /// <paramref name="ct"/> is cancelled (then the half-made communicator is aborted and the call throws).</summary>
    public static unsafe NcclCommunicator Create(NcclUniqueId id, int rank, int size, int device, TimeSpan deadline, CancellationToken ct = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rank);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(rank, size);
        CudaRuntime.SetDevice(device); // NCCL binds the communicator to the current device
        var config = NcclConfig.NonBlocking();
        var r = NcclNative.CommInitRankConfig(out var handle, size, id, rank, &config);
        var op = new OpContext("CommInitRank", $"rank {rank} of {size} on cuda:{device}", null, Others(rank, size));
        if (handle == IntPtr.Zero)
            throw new CollectiveException(op.Operation, op.What, rank, $"ncclCommInitRankConfig returned {NcclNative.ErrorString(r)} and no communicator");
        var comm = new NcclCommunicator(handle, rank, size, device, deadline);
        if (r is not (NcclResult.Success or NcclResult.InProgress))
            throw comm.AbortWith(op, $"{NcclNative.ErrorString(r)}; {NcclNative.LastError(handle)}");
        using (ct.Register(() => comm.RequestAbort("cancelled while joining")))
        {
            comm._watchdog.WaitUntilEnqueued(op, Stopwatch.StartNew());
            comm.ConnectPeers();
        }
        return comm;
    }

    /// <summary>Elements (int32) of each warm-up transfer: large enough that NCCL spreads it over all the
    /// channels it uses for big messages (16 MB a direction), so every one of them is connected here.</summary>
    private const long WarmUpElements = 4L << 20;

    /// <summary>NCCL connects channels lazily: point-to-point ones on the first send/receive to a peer, and
    /// large messages use more channels than small ones; collective ones on the first collective. Doing all
    /// of that here, with a large exchange with every peer and a large all-gather while all ranks are idle,
    /// keeps connection set-up (memory registration, peer access) out of the first ring step, where it raced
    /// the model's kernels: with only a 4-byte warm-up, a 2-GPU bench's first 64 MB ring step still hung on
    /// one rank (docs/benchmarks/parallel-h200-2gpu/third-run).</summary>
    private void ConnectPeers()
    {
        if (Size < 2) return;
        var device = new torch.Device(DeviceType.CUDA, Device);
        var buffers = Enumerable.Range(0, Size).Where(p => p != Rank)
            .Select(p => (Peer: p, Out: torch.zeros(WarmUpElements, ScalarType.Int32, device), In: torch.zeros(WarmUpElements, ScalarType.Int32, device))).ToList();
        try
        {
            SendRecv(buffers.SelectMany(b => new[] { PeerTransfer.SendTo(b.Out, b.Peer), PeerTransfer.ReceiveFrom(b.In, b.Peer) }).ToList(),
                "ConnectPeers", "point-to-point warm-up");
            using var mine = torch.zeros(WarmUpElements / Size, ScalarType.Int32, device);
            using var all = torch.zeros(WarmUpElements / Size * Size, ScalarType.Int32, device);
            AllGather(mine, all, "collective warm-up");
        }
        finally
        {
            foreach (var b in buffers) { b.Out.Dispose(); b.In.Dispose(); }
        }
    }

    /// <summary>One communicator per device for several GPUs driven by one process: rank i uses devices[i].
    /// Each rank initialises on its own thread (init is a collective); all are disposed if any fails.</summary>
    public static NcclCommunicator[] CreateAllInProcess(int[] devices, TimeSpan deadline)
    {
        var id = CreateUniqueId();
        var comms = new NcclCommunicator?[devices.Length];
        var errors = new Exception?[devices.Length];
        var threads = devices.Select((device, rank) => new Thread(() =>
        {
            try { comms[rank] = Create(id, rank, devices.Length, device, deadline); }
            catch (Exception e) { errors[rank] = e; }
        }) { IsBackground = true, Name = $"nccl-init-{rank}" }).ToArray();
        foreach (var t in threads) t.Start();
        foreach (var t in threads) t.Join();
        if (errors.FirstOrDefault(e => e != null) is { } first)
        {
            foreach (var c in comms) c?.Abort();
            throw first;
        }
        return comms.Select(c => c!).ToArray();
    }

    /// <summary>Gathers <paramref name="send"/> from every rank into <paramref name="recv"/> (rank-major, Size x send.numel()).</summary>
    public void AllGather(Tensor send, Tensor recv, string what)
    {
        var op = Begin("AllGather", what, null);
        CheckBuffers(op, send, recv.numel(), recv);
        var r = NcclNative.AllGather(Ptr(send), Ptr(recv), (nuint)send.numel(), NcclTypes.FromTorch(send.dtype), Handle, Stream);
        _watchdog.Wait(r, op);
    }

    /// <summary>In-place broadcast: root's <paramref name="buffer"/> is copied into every other rank's.</summary>
    public void Broadcast(Tensor buffer, int root, string what)
    {
        var op = Begin("Broadcast", what, Rank == root ? null : root);
        CheckBuffers(op, buffer, buffer.numel() * Size, null);
        var p = Ptr(buffer);
        var r = NcclNative.Broadcast(p, p, (nuint)buffer.numel(), NcclTypes.FromTorch(buffer.dtype), root, Handle, Stream);
        _watchdog.Wait(r, op);
    }

    /// <summary>Element-wise reduction over all ranks (also our barrier: a 1-element all-reduce).</summary>
    public void AllReduce(Tensor send, Tensor recv, NcclRedOp reduction, string what)
    {
        var op = Begin("AllReduce", what, null);
        CheckBuffers(op, send, send.numel(), recv);
        var r = NcclNative.AllReduce(Ptr(send), Ptr(recv), (nuint)send.numel(), NcclTypes.FromTorch(send.dtype), reduction, Handle, Stream);
        _watchdog.Wait(r, op);
    }

    /// <summary>Point-to-point transfers issued as one NCCL group, so a ring step (send right, receive left)
    /// cannot deadlock. <paramref name="peer"/> labels errors (the single peer, or null for many).</summary>
    public void SendRecv(IReadOnlyList<PeerTransfer> transfers, string operation, string what, int? peer = null)
    {
        var op = Begin(operation, what, peer);
        foreach (var t in transfers)
        {
            if (t.Peer < 0 || t.Peer >= Size || t.Peer == Rank)
                throw new ArgumentOutOfRangeException(nameof(transfers), $"peer {t.Peer} is not another rank of {Size}");
            CheckBuffers(op, t.Tensor, t.Tensor.numel() * Size, null);
        }
        var r = NcclNative.GroupStart();
        if (r != NcclResult.Success) throw AbortWith(op, $"ncclGroupStart: {NcclNative.ErrorString(r)}");
        var enqueued = NcclResult.Success;
        foreach (var t in transfers)
        {
            var dtype = NcclTypes.FromTorch(t.Tensor.dtype);
            var count = (nuint)t.Tensor.numel();
            var ri = t.IsSend
                ? NcclNative.Send(Ptr(t.Tensor), count, dtype, t.Peer, Handle, Stream)
                : NcclNative.Recv(Ptr(t.Tensor), count, dtype, t.Peer, Handle, Stream);
            if (ri is not (NcclResult.Success or NcclResult.InProgress)) enqueued = ri;
        }
        var end = NcclNative.GroupEnd(); // always close the group, even after a failed enqueue
        _watchdog.Wait(enqueued != NcclResult.Success ? enqueued : end, op);
    }

    /// <summary>Aborts the communicator: in-flight kernels stop, the handle is freed. Safe to call twice.
    /// Owner thread only (or when no thread uses the communicator); from any other thread use <see cref="RequestAbort"/>.</summary>
    public void Abort(string reason = "aborted by caller")
    {
        if (Handle == IntPtr.Zero) return;
        _abortReason ??= reason;
        NcclNative.CommAbort(Handle); // result ignored: there is nothing more to do if abort itself fails
        Handle = IntPtr.Zero;
    }

    /// <summary>Thread-safe: asks the owner thread to abort (ncclCommAbort) at its next poll or call, which then
    /// throws a <see cref="CollectiveException"/> with <see cref="CollectiveException.Aborted"/> set. The first
    /// reason wins. This never touches the handle itself, so it is safe while the owner is inside a wait.</summary>
    public void RequestAbort(string reason) => Interlocked.CompareExchange(ref _abortRequest, reason, null);

    /// <summary>Owner thread: carries out a requested abort, throwing for <paramref name="op"/>.</summary>
    internal void ThrowIfAbortRequested(OpContext op)
    {
        if (_abortRequest is { } reason)
            throw AbortWith(op, $"abort requested: {reason}", aborted: true);
    }

    /// <summary>Finalizes (flushes outstanding work, within the deadline) and destroys; aborts if that fails.
    /// With several ranks in one process, dispose them concurrently (finalize may wait on peers).</summary>
    public void Dispose()
    {
        if (Handle != IntPtr.Zero)
        {
            try
            {
                CudaRuntime.SetDevice(Device);
                var op = new OpContext("CommFinalize", "dispose", null, Others(Rank, Size));
                var r = NcclNative.CommFinalize(Handle);
                if (r is NcclResult.Success or NcclResult.InProgress)
                {
                    _watchdog.WaitUntilEnqueued(op, Stopwatch.StartNew());
                    NcclNative.CommDestroy(Handle);
                    Handle = IntPtr.Zero;
                }
                else Abort($"ncclCommFinalize: {NcclNative.ErrorString(r)}");
            }
            catch (CollectiveException) { /* AbortWith already aborted it */ }
        }
        _watchdog.Dispose();
        ReleaseStream();
    }

    /// <summary>The stream goes once the communicator is destroyed or aborted (no NCCL work can be left on it).</summary>
    private void ReleaseStream()
    {
        if (Stream == IntPtr.Zero || Handle != IntPtr.Zero) return;
        CudaNative.StreamDestroy(Stream); // best effort: a lost device must not mask the original error
        Stream = IntPtr.Zero;
        _inputsReady.Dispose();
    }

    /// <summary>Aborts and builds the exception to throw: names the operation, this rank, the peer and NCCL's reason.</summary>
    internal CollectiveException AbortWith(OpContext op, string detail, bool timedOut = false, bool aborted = false)
    {
        Abort($"{op.Operation} '{op.What}': {detail}");
        var missing = timedOut ? (op.Peer is { } p ? [p] : op.Waiting) : [];
        return new CollectiveException(op.Operation, op.What, Rank, detail + " (communicator aborted)", op.Peer, missing, timedOut) { Aborted = aborted };
    }

    private OpContext Begin(string operation, string what, int? peer)
    {
        if (_abortReason != null)
            throw new CollectiveException(operation, what, Rank, $"communicator was aborted earlier: {_abortReason}", peer) { Aborted = _abortRequest != null };
        ObjectDisposedException.ThrowIf(Handle == IntPtr.Zero, this);
        var op = new OpContext(operation, what, peer, peer is { } p ? [p] : Others(Rank, Size));
        ThrowIfAbortRequested(op);
        CudaRuntime.SetDevice(Device); // events and streams are per-device
        // Inputs come from torch kernels on the default stream: our stream starts once they are done.
        _inputsReady.Record(TorchStream);
        _inputsReady.MakeWait(Stream);
        return op;
    }

    private void CheckBuffers(OpContext op, Tensor send, long expectedRecvNumel, Tensor? recv)
    {
        foreach (var t in recv is null ? new[] { send } : [send, recv])
        {
            if (t.device_type != DeviceType.CUDA || t.device_index != Device)
                throw new CollectiveException(op.Operation, op.What, Rank, $"tensor is on {t.device}, the communicator on cuda:{Device}", op.Peer);
        }
        if (recv is not null && (recv.numel() != expectedRecvNumel || recv.dtype != send.dtype))
            throw new CollectiveException(op.Operation, op.What, Rank,
                $"receive buffer {TorchTensors.ShapeText(recv.shape)} {recv.dtype} does not fit {expectedRecvNumel} elements of {send.dtype}", op.Peer);
    }

    private static IntPtr Ptr(Tensor t) => TorchTensors.DataPointer(t);

    private static int[] Others(int rank, int size) => Enumerable.Range(0, size).Where(r => r != rank).ToArray();
}

/// <summary>One leg of a grouped point-to-point exchange: send <see cref="Tensor"/> to, or receive it from, <see cref="Peer"/>.</summary>
public readonly record struct PeerTransfer(Tensor Tensor, int Peer, bool IsSend)
{
    public static PeerTransfer SendTo(Tensor t, int peer) => new(t, peer, true);
    public static PeerTransfer ReceiveFrom(Tensor t, int peer) => new(t, peer, false);
}
