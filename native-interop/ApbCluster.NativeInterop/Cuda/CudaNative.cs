using System.Runtime.InteropServices;

namespace ApbCluster.NativeInterop.Cuda;

/// <summary>cudaError_t values we act on (cuda_runtime_api.h / driver_types.h).</summary>
public enum CudaError
{
    Success = 0,
    InvalidValue = 1,
    MemoryAllocation = 2,
    InvalidDevice = 101,
    NoDevice = 100,
    NotReady = 600,
}

/// <summary>Raw CUDA runtime entry points (libcudart.so.13 / .12). Stream 0 is the legacy default stream TorchSharp uses.</summary>
public static partial class CudaNative
{
    public const uint EventDisableTiming = 0x02;  // cudaEventDisableTiming: cheaper, we only poll completion
    public const uint StreamNonBlocking = 0x01;   // cudaStreamNonBlocking

    static CudaNative() => NativeLibraries.EnsureResolver();

    [LibraryImport(NativeLibraries.CudaRuntime, EntryPoint = "cudaSetDevice")]
    public static partial CudaError SetDevice(int device);

    [LibraryImport(NativeLibraries.CudaRuntime, EntryPoint = "cudaGetDevice")]
    public static partial CudaError GetDevice(out int device);

    [LibraryImport(NativeLibraries.CudaRuntime, EntryPoint = "cudaGetDeviceCount")]
    public static partial CudaError GetDeviceCount(out int count);

    [LibraryImport(NativeLibraries.CudaRuntime, EntryPoint = "cudaStreamCreateWithFlags")]
    public static partial CudaError StreamCreateWithFlags(out IntPtr stream, uint flags);

    [LibraryImport(NativeLibraries.CudaRuntime, EntryPoint = "cudaStreamDestroy")]
    public static partial CudaError StreamDestroy(IntPtr stream);

    [LibraryImport(NativeLibraries.CudaRuntime, EntryPoint = "cudaStreamSynchronize")]
    public static partial CudaError StreamSynchronize(IntPtr stream);

    [LibraryImport(NativeLibraries.CudaRuntime, EntryPoint = "cudaEventCreateWithFlags")]
    public static partial CudaError EventCreateWithFlags(out IntPtr evt, uint flags);

    [LibraryImport(NativeLibraries.CudaRuntime, EntryPoint = "cudaEventRecord")]
    public static partial CudaError EventRecord(IntPtr evt, IntPtr stream);

    [LibraryImport(NativeLibraries.CudaRuntime, EntryPoint = "cudaStreamWaitEvent")]
    public static partial CudaError StreamWaitEvent(IntPtr stream, IntPtr evt, uint flags);

    [LibraryImport(NativeLibraries.CudaRuntime, EntryPoint = "cudaEventQuery")]
    public static partial CudaError EventQuery(IntPtr evt);

    [LibraryImport(NativeLibraries.CudaRuntime, EntryPoint = "cudaEventDestroy")]
    public static partial CudaError EventDestroy(IntPtr evt);

    [LibraryImport(NativeLibraries.CudaRuntime, EntryPoint = "cudaGetErrorString")]
    private static partial IntPtr GetErrorStringRaw(CudaError error);

    [LibraryImport(NativeLibraries.CudaRuntime, EntryPoint = "cudaMemGetInfo")]
    public static partial CudaError MemGetInfo(out nuint free, out nuint total);

    [LibraryImport(NativeLibraries.CudaRuntime, EntryPoint = "cudaDeviceSynchronize")]
    public static partial CudaError DeviceSynchronize();

    /// <summary>CUDA's own text for an error code.</summary>
    public static string ErrorString(CudaError error) =>
        Marshal.PtrToStringUTF8(GetErrorStringRaw(error)) ?? $"cudaError {(int)error}";
}

/// <summary>A CUDA runtime call failed; the message names the call and CUDA's error text.</summary>
public sealed class CudaException(string call, CudaError error)
    : Exception($"{call} failed: {CudaNative.ErrorString(error)} (cudaError {(int)error})")
{
    public CudaError Error { get; } = error;
}

/// <summary>Throwing wrappers for the calls whose failure is a bug or a lost device.</summary>
public static class CudaRuntime
{
    public static void Check(CudaError e, string call)
    {
        if (e != CudaError.Success) throw new CudaException(call, e);
    }

    public static void SetDevice(int device) => Check(CudaNative.SetDevice(device), $"cudaSetDevice({device})");

    public static int DeviceCount()
    {
        Check(CudaNative.GetDeviceCount(out var n), "cudaGetDeviceCount");
        return n;
    }

    public static (ulong Free, ulong Total) MemoryInfo()
    {
        Check(CudaNative.MemGetInfo(out var free, out var total), "cudaMemGetInfo");
        return (free, total);
    }
}
