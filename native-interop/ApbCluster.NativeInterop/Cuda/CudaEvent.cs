namespace ApbCluster.NativeInterop.Cuda;

/// <summary>
/// A timing-free CUDA event on the current device: recorded after enqueued work so the watchdog can
/// poll completion (cudaEventQuery) without blocking the thread.
/// </summary>
public sealed class CudaEvent : IDisposable
{
    private IntPtr _handle;

    public CudaEvent()
    {
        CudaRuntime.Check(CudaNative.EventCreateWithFlags(out _handle, CudaNative.EventDisableTiming), "cudaEventCreateWithFlags");
    }

    /// <summary>Records on <paramref name="stream"/> (0 = legacy default stream, the one TorchSharp's kernels use).</summary>
    public void Record(IntPtr stream = default) =>
        CudaRuntime.Check(CudaNative.EventRecord(_handle, stream), "cudaEventRecord");

    /// <summary>Makes <paramref name="stream"/> wait (on the device, not the host) for the work before the last record.</summary>
    public void MakeWait(IntPtr stream) =>
        CudaRuntime.Check(CudaNative.StreamWaitEvent(stream, _handle, 0), "cudaStreamWaitEvent");

    /// <summary>True once all work before the record has finished; throws on a CUDA error.</summary>
    public bool IsComplete()
    {
        var e = CudaNative.EventQuery(_handle);
        if (e == CudaError.NotReady) return false;
        CudaRuntime.Check(e, "cudaEventQuery");
        return true;
    }

    public void Dispose()
    {
        if (_handle == IntPtr.Zero) return;
        CudaNative.EventDestroy(_handle); // best effort: a lost device must not mask the original error
        _handle = IntPtr.Zero;
    }
}
