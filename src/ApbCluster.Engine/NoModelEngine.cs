using System.Diagnostics;
using ApbCluster.Contracts;
using ApbCluster.Parallel.Collectives;

namespace ApbCluster.Engine;

/// <summary>
/// A host without a model (no APB_MODEL / APB_MODEL_DIR): reports the "cpu" device and this
/// process's memory, holds no KV, and refuses queries with a clear reason.
/// </summary>
public sealed class NoModelEngine : IShardEngine
{
    public const string Refusal = "no model is loaded on this host (set APB_MODEL_DIR or APB_MODEL=random:SHAPE:SEED)";

    public string Device => "cpu";

    public string ModelName => "";

    public long KvBytes => 0;

    public DeviceMemory Memory() => ProcessMemory();

    public long HostKvBytes => 0;

    public DeviceMemory HostMemory() => HostMemoryInfo.Read();

    public ShardOutcome Run(ShardWork work, ICollective collective, IShardEvents events, CancellationToken ct) =>
        throw new NotSupportedException(Refusal);

    public void Dispose()
    {
    }

    internal static DeviceMemory ProcessMemory()
    {
        using var process = Process.GetCurrentProcess();
        return new DeviceMemory(process.WorkingSet64, GC.GetGCMemoryInfo().TotalAvailableMemoryBytes);
    }
}
