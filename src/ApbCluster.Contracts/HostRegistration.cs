using Akka.Actor;

namespace ApbCluster.Contracts;

/// <summary>
/// Internal: a GpuHost announces itself to the router singleton. Sent periodically, so it
/// doubles as a status refresh and re-registers the host after a singleton hand-over
/// (the new router starts with an empty registry). DataEndpoint is the host's data-plane
/// listener ("host:port"), where peers connect to pass tensors for a query.
/// </summary>
public sealed record RegisterHost(
    string HostId,
    IActorRef Host,
    string Device,
    long MemoryUsedBytes,
    long MemoryTotalBytes,
    string Model,
    HostState State,
    long KvBytes,
    string DataEndpoint) : IApbMessage;

/// <summary>Internal: the router's acknowledgement; Router is the singleton instance itself.</summary>
public sealed record HostRegistered(string HostId, IActorRef Router) : IApbMessage;
