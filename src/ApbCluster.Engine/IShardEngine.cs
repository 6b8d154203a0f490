using ApbCluster.Contracts;
using ApbCluster.Parallel.Collectives;

namespace ApbCluster.Engine;

/// <summary>
/// The seam where the model maths plugs into a GpuHost: one engine owns one device, its model and
/// the KV shard of the query it runs. GpuHost calls <see cref="Run"/> on a dedicated thread (never
/// the actor's) and never touches tensors itself.
/// </summary>
public interface IShardEngine : IDisposable
{
    /// <summary>"cpu", "cuda:0", ...</summary>
    string Device { get; }

    /// <summary>Loaded model's name, or "" when none.</summary>
    string ModelName { get; }

    DeviceMemory Memory();

    /// <summary>Bytes of KV held now on the device: the sum of the running queries' shards or ShadowKV stores (0 when idle).</summary>
    long KvBytes { get; }

    /// <summary>The host memory ShadowKV values may take: (held, budget) with apb.gpu-host.host-kv-memory, else the machine's.</summary>
    DeviceMemory HostMemory();

    /// <summary>Bytes of ShadowKV values held now in host memory, summed over the running queries (0 when idle).</summary>
    long HostKvBytes { get; }

    /// <summary>
    /// Runs this host's rank of one query (Phase 1 then Phase 2) over <paramref name="collective"/> (its rank and
    /// world size are this host's place in the ring),
    /// blocking. Called on several threads at once when the host runs several queries: it must be thread-safe. Reports each prefill layer and each generated token through <paramref name="events"/>.
    /// The shard's KV lives only for the call: it is freed on return, failure or cancellation.
    /// Cancellation (or an aborted collective) ends the call with an exception.
    /// </summary>
    ShardOutcome Run(ShardWork work, ICollective collective, IShardEvents events, CancellationToken ct);
}

/// <summary>Used and total bytes of one memory: a device's, or the host's.</summary>
public readonly record struct DeviceMemory(long UsedBytes, long TotalBytes);

/// <summary>Callbacks from the engine's thread; implementations must be thread-safe (they Tell actors).</summary>
public interface IShardEvents
{
    void LayerDone(int layer, int layers);

    void Token(long id);
}

public sealed record ShardOutcome(double PrefillMs, double TotalMs, int GeneratedTokens);
