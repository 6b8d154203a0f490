using ApbCluster.NativeInterop;

namespace ApbCluster.Model.Tests.Gpu;

/// <summary>Whether this process can run CUDA tensors; GPU tests skip with <see cref="Reason"/> otherwise.</summary>
internal static class GpuAvailability
{
    private static readonly Lazy<string?> Failure = new(() =>
    {
        try { TorchRuntime.EnsureLoaded("cuda"); return null; }
        catch (Exception e) { return e.Message; }
    });

    public static bool Available => Failure.Value == null;
    public static string Reason => "needs a CUDA GPU (run the published test executable on a GPU host): " + Failure.Value;
}
