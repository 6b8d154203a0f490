namespace ApbCluster.Contracts;

/// <summary>Ask the router for the cluster's hosts and load; the reply is <see cref="ClusterStatus"/>.</summary>
public sealed record GetClusterStatus : IApbMessage
{
    public static readonly GetClusterStatus Instance = new();
}

public enum HostState : byte
{
    Starting = 0,
    Ready = 1,
    Busy = 2,
    Draining = 3,
    Unreachable = 4,
    Failed = 5,
}

/// <summary>One GPU host (one device, or one virtual host on CPU): its device memory and the KV held there, and the host
/// memory ShadowKV values may take (budget or machine) and the values held there.</summary>
public sealed record HostStatus(
    string HostId,
    string Address,
    string Device,
    long MemoryUsedBytes,
    long MemoryTotalBytes,
    string Model,
    HostState State,
    long KvBytes,
    long HostMemoryUsedBytes = 0,
    long HostMemoryTotalBytes = 0,
    long HostKvBytes = 0);

/// <summary>Hosts in ring order, plus the router's queue and in-flight counts.</summary>
public sealed record ClusterStatus(
    string RouterAddress,
    IReadOnlyList<HostStatus> Hosts,
    int QueueDepth,
    int InFlight) : IApbMessage;
