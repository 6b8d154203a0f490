using System.Diagnostics;

namespace ApbCluster.Runtime.Engine;

/// <summary>
/// Stands in until the model engine exists: reports the "cpu" device and this process's
/// memory, holds no KV, and refuses prefill/decode with a clear reason.
/// </summary>
public sealed class CpuPlaceholderEngine : IShardEngine
{
    public string Device => "cpu";

    public string ModelName => "";

    public long KvBytes => 0;

    public DeviceMemory Memory()
    {
        using var process = Process.GetCurrentProcess();
        return new DeviceMemory(process.WorkingSet64, GC.GetGCMemoryInfo().TotalAvailableMemoryBytes);
    }

    public Task<ShardPrefillResult> PrefillAsync(ShardPrefillRequest request, IProgress<int> layerDone, CancellationToken ct) =>
        Task.FromException<ShardPrefillResult>(new NotSupportedException("no model engine is plugged into this host yet"));

    public Task<DecodeStepResult> DecodeStepAsync(DecodeStepRequest request, CancellationToken ct) =>
        Task.FromException<DecodeStepResult>(new NotSupportedException("no model engine is plugged into this host yet"));

    public void FreeKv(string queryId)
    {
    }

    public void Dispose()
    {
    }
}
