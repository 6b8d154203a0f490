using System.Diagnostics;
using ApbCluster.NativeInterop.Cuda;

namespace ApbCluster.NativeInterop.Nccl;

/// <summary>
/// NCCL has no timeouts, so after every call we wait the way PyTorch's watchdog does: first until the
/// non-blocking call has actually been enqueued (ncclCommGetAsyncError leaves ncclInProgress), then until a
/// CUDA event recorded behind it completes, checking the communicator's async error all along. A failure or
/// a passed deadline aborts the communicator (which also kills its in-flight kernels) and throws. So does an
/// abort another thread asked for (<see cref="NcclCommunicator.RequestAbort"/>): it is carried out here, on
/// the owner thread, between two polls.
/// </summary>
internal sealed class NcclWatchdog(NcclCommunicator owner) : IDisposable
{
    // After this long we stop spinning and sleep 1 ms between polls: long waits should not burn a core.
    private static readonly TimeSpan SpinPhase = TimeSpan.FromMilliseconds(5);
    private CudaEvent? _event;

    public void Wait(NcclResult enqueued, OpContext op)
    {
        var clock = Stopwatch.StartNew();
        if (enqueued is not (NcclResult.Success or NcclResult.InProgress))
            throw owner.AbortWith(op, $"{NcclNative.ErrorString(enqueued)}; {NcclNative.LastError(owner.Handle)}");

        WaitUntilEnqueued(op, clock);
        _event ??= new CudaEvent();
        _event.Record(owner.Stream);
        var spin = new SpinWait();
        while (!_event.IsComplete())
        {
            CheckAsyncError(op, allowInProgress: true);
            Pause(ref spin, clock, op);
        }
        CheckAsyncError(op, allowInProgress: false);
    }

    /// <summary>Non-blocking init/finalize/group calls: poll until the communicator leaves ncclInProgress.</summary>
    public void WaitUntilEnqueued(OpContext op, Stopwatch clock)
    {
        var spin = new SpinWait();
        while (CheckAsyncError(op, allowInProgress: true) == NcclResult.InProgress)
            Pause(ref spin, clock, op);
    }

    private NcclResult CheckAsyncError(OpContext op, bool allowInProgress)
    {
        var r = NcclNative.CommGetAsyncError(owner.Handle, out var state);
        if (r != NcclResult.Success)
            throw owner.AbortWith(op, $"ncclCommGetAsyncError: {NcclNative.ErrorString(r)}");
        if (state == NcclResult.Success || (allowInProgress && state == NcclResult.InProgress)) return state;
        throw owner.AbortWith(op, $"{NcclNative.ErrorString(state)}; {NcclNative.LastError(owner.Handle)}");
    }

    private void Pause(ref SpinWait spin, Stopwatch clock, OpContext op)
    {
        owner.ThrowIfAbortRequested(op);
        if (clock.Elapsed > owner.Deadline)
            throw owner.AbortWith(op, $"deadline of {owner.Deadline.TotalSeconds:0.###} s passed; " +
                (op.Peer is { } p ? $"peer {p} never completed its side" : $"waiting on ranks [{string.Join(", ", op.Waiting)}] (NCCL cannot tell which one is late)"),
                timedOut: true);
        if (clock.Elapsed < SpinPhase) spin.SpinOnce(sleep1Threshold: -1);
        else Thread.Sleep(1);
    }

    public void Dispose() => _event?.Dispose();
}

/// <summary>What an NCCL call was doing, for errors: operation, caller's label, peer, ranks waited on.</summary>
internal readonly record struct OpContext(string Operation, string What, int? Peer, int[] Waiting);
