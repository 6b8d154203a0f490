using Akka.Actor;

namespace ApbCluster.Contracts;

/// <summary>
/// Internal: the router's instructions to one host for one query (the "anchor broadcast": every
/// host gets the whole document and the question and builds the same plan from the resolved
/// lengths). HostIds and DataEndpoints are indexed by rank (ring order). Tensor bytes never travel here: ranks exchange them on the data plane, over TCP at
/// <c>DataEndpoints[rank]</c> or over NCCL when <c>NcclUniqueId</c> is set.
/// </summary>
public sealed record RunShard(
    string QueryId,
    IActorRef Coordinator,
    int Rank,
    int WorldSize,
    IReadOnlyList<string> HostIds,
    IReadOnlyList<string> DataEndpoints,
    byte[]? NcclUniqueId,
    AttentionMode Mode,
    int AnchorLength,
    int PassingLength,
    string Compressor,
    IReadOnlyList<int> Document,
    IReadOnlyList<int> Question,
    GenerationOptions Generation,
    int CollectiveTimeoutMs) : IQueryMessage;

/// <summary>Internal: generated token ids from the last host, in order (Index counts chunks from 0).</summary>
public sealed record ShardTokens(string QueryId, int Index, IReadOnlyList<int> TokenIds) : IQueryMessage;

/// <summary>Internal: a host finished its rank of the query and freed its KV.</summary>
public sealed record ShardFinished(string QueryId, string HostId, int Rank, double PrefillMs, double TotalMs, int GeneratedTokens) : IQueryMessage;

/// <summary>
/// Internal: a host's rank failed (its own error, or a peer's: a collective deadline or a dropped
/// data connection). BlamedHost names the host at fault when known: the reporter itself for its
/// own errors, the peer for data-plane failures.
/// </summary>
public sealed record ShardFailed(string QueryId, string HostId, string Reason, string? BlamedHost, bool DataPlane) : IQueryMessage;

/// <summary>Internal: the router asks rank 0 of a GPU query for a fresh NCCL unique id.</summary>
public sealed record NcclIdRequest(string QueryId) : IQueryMessage;

/// <summary>Internal: rank 0's NCCL unique id (128 opaque bytes), or the reason it has none.</summary>
public sealed record NcclIdReply(string QueryId, byte[]? Id, string? Error) : IQueryMessage;
