using Akka.Actor;

namespace ApbCluster.Contracts;

/// <summary>
/// Internal: a GpuHost announces itself to the router singleton. Sent periodically, so it
/// doubles as a status refresh and re-registers the host after a singleton hand-over
/// (the new router starts with an empty registry). DataEndpoint is the host's data-plane
/// listener ("host:port"), where peers connect to pass tensors for a query.
/// ModelFingerprint names the model the host serves (config and tokenizer hash); the router refuses a host
/// whose fingerprint differs from its own. JoinProof answers the router's <see cref="JoinChallenge"/>: an
/// HMAC-SHA256 with the cluster's join secret over JoinNonce (the router's), the host id, its actor and data
/// addresses and the fingerprint, so the secret itself never crosses the wire. Empty before the first challenge.
/// HostMemory* is the host memory ShadowKV values may take (the budget apb.gpu-host.host-kv-memory, or the machine's
/// memory) and HostKvBytes the values held there now, beside the device's Memory* and KvBytes.
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
    string DataEndpoint,
    string ModelFingerprint = "",
    string JoinNonce = "",
    string JoinProof = "",
    long HostMemoryUsedBytes = 0,
    long HostMemoryTotalBytes = 0,
    long HostKvBytes = 0) : IApbMessage;

/// <summary>Internal: the router asks a host to prove it holds the join secret, over this nonce (one per router
/// incarnation, so a proof seen on the wire does not work for the next router).</summary>
public sealed record JoinChallenge(string HostId, string Nonce) : IApbMessage;

/// <summary>Why the router would not register a host.</summary>
public enum JoinRefusal : byte
{
    /// <summary>The host sent no proof for the router's nonce: it has no join secret configured.</summary>
    MissingProof = 1,

    /// <summary>The proof does not match: the host's join secret differs from the router's.</summary>
    WrongSecret = 2,

    /// <summary>The host serves another model (or none) than the router's.</summary>
    ModelMismatch = 3,
}

/// <summary>Internal: the router refused to register a host; it is never planned. Message says why, for its log.</summary>
public sealed record HostRefused(string HostId, JoinRefusal Reason, string Message) : IApbMessage;

/// <summary>Internal: the router's acknowledgement; Router is the singleton instance itself.</summary>
public sealed record HostRegistered(string HostId, IActorRef Router) : IApbMessage;
