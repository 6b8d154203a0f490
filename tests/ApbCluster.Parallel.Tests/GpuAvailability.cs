using ApbCluster.NativeInterop;
using TorchSharp;

namespace ApbCluster.Parallel.Tests;

/// <summary>Whether CUDA (and how many GPUs) can be used here; probed once. False on CPU-only machines.</summary>
public static class GpuAvailability
{
    private static readonly Lazy<(int Devices, string Reason)> Probe = new(() =>
    {
        try
        {
            TorchRuntime.EnsureLoaded("cuda");
            return (torch.cuda.device_count(), "");
        }
        catch (Exception e) { return (0, e.Message); }
    });

    public static int DeviceCount => Probe.Value.Devices;

    /// <summary>Two GPUs (NCCL refuses two ranks on one device).</summary>
    public static bool HasTwoGpus => DeviceCount >= 2;

    public static string SkipReason => DeviceCount switch
    {
        0 => $"no CUDA here: {Probe.Value.Reason}",
        1 => "needs 2 GPUs, found 1",
        _ => "",
    };
}
