using System.Diagnostics;
using ApbCluster.NativeInterop.Cuda;
using TorchSharp;
using static TorchSharp.torch;

namespace ApbCluster.Benchmarks;

/// <summary>Wall-clock timing that waits for the GPU's queued work before reading the clock.</summary>
public static class GpuClock
{
    public static void Sync(Device device)
    {
        if (device.type == DeviceType.CUDA) cuda.synchronize(device);
    }

    public static double Seconds(Device device, Action body)
    {
        Sync(device);
        var clock = Stopwatch.StartNew();
        body();
        Sync(device);
        return clock.Elapsed.TotalSeconds;
    }

    /// <summary>The device's memory, in GiB (0 on the CPU).</summary>
    public static double TotalGiB(Device device)
    {
        if (device.type != DeviceType.CUDA) return 0;
        CudaRuntime.SetDevice(device.index < 0 ? 0 : device.index);
        return CudaRuntime.MemoryInfo().Total / (double)(1L << 30);
    }

    /// <summary>Device memory in use on <paramref name="device"/> (cudaMemGetInfo: total - free), in GiB.
    /// libtorch's caching allocator keeps what it reserved, so after a run this is that run's high-water mark.</summary>
    public static double UsedGiB(Device device)
    {
        if (device.type != DeviceType.CUDA) return 0;
        CudaRuntime.SetDevice(device.index < 0 ? 0 : device.index);
        var (free, total) = CudaRuntime.MemoryInfo();
        return (total - free) / (double)(1L << 30);
    }
}
