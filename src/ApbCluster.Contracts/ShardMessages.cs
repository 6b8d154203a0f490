using Akka.Actor;

namespace ApbCluster.Contracts;

/// <summary>
/// Internal: the router's instructions to one host for one query (the "anchor broadcast": every
/// host gets the whole document and the question, and the router's plan, which it re-creates and checks). HostIds and DataEndpoints are indexed by rank (ring order). Tensor bytes never travel here: ranks exchange them on the data plane, over TCP at
/// <c>DataEndpoints[rank]</c> or over NCCL when <c>NcclRingId</c> is set.
/// <para>NCCL rings: a communicator is kept warm across queries for the same ordered hosts. <c>NcclRingId</c>
/// names the ring; with <c>NcclReuse</c> false every rank joins it fresh with <c>NcclUniqueId</c> (made by rank 0,
/// dropping whatever communicator it held); with <c>NcclReuse</c> true every rank uses the communicator it
/// already holds for that ring (the router checked with <see cref="NcclRingCheck"/> that all of them do).</para>
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
    ShardPlan Plan,
    string Compressor,
    IReadOnlyList<int> Document,
    IReadOnlyList<int> Question,
    GenerationOptions Generation,
    int CollectiveTimeoutMs,
    string NcclRingId = "",
    bool NcclReuse = false,
    PrefillAttentionOptions? PrefillAttention = null,
    KvStoreOptions? KvStore = null) : IQueryMessage;

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

/// <summary>Internal: before reusing NCCL ring <c>RingId</c> for a query, the router asks every member whether it
/// still holds that ring's communicator, idle and healthy.</summary>
public sealed record NcclRingCheck(string QueryId, string RingId) : IQueryMessage;

/// <summary>Internal: a host's answer to <see cref="NcclRingCheck"/>. Not ready (dropped after a failure or an
/// abort, replaced by another ring, or still busy) makes the router form a new ring with a fresh NCCL id.</summary>
public sealed record NcclRingStatus(string QueryId, string HostId, string RingId, bool Ready) : IQueryMessage;

/// <summary>Internal: the router gave up NCCL ring <c>RingId</c> (a member was lost, re-registered or became
/// unreachable, or a query on it failed): a host holding it aborts its communicator.</summary>
public sealed record DropNcclRing(string RingId, string Reason) : IApbMessage;

/// <summary>Internal: the plan the router made, as a host needs it: every host's block length in ring order,
/// l_a, l_p, where the question sits in the anchor, and whether it is embedded there.</summary>
public sealed record ShardPlan(IReadOnlyList<int> BlockLengths, int AnchorLength, int PassingLength, int TemplateOffset, bool EmbedQuestion);
