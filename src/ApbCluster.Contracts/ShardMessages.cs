using Akka.Actor;

namespace ApbCluster.Contracts;

/// <summary>
/// Internal: the router's instructions to one host for one query (the "anchor broadcast": every host gets the whole
/// document and the question, and the router's plan, which it re-creates and checks). <c>Ring</c> says where this
/// host stands among the query's hosts and how they exchange tensors; <c>Work</c> says what they compute.
/// </summary>
public sealed record RunShard(string QueryId, IActorRef Coordinator, ShardRing Ring, ShardWork Work) : IQueryMessage;

/// <summary>
/// Internal: a host's place in a query's ring. HostIds and DataEndpoints are indexed by rank (ring order). Tensor bytes
/// never travel in messages: ranks exchange them on the data plane, over TCP at <c>DataEndpoints[rank]</c> or over NCCL
/// when <c>NcclRingId</c> is set. A collective that waits longer than <c>CollectiveTimeoutMs</c> fails the query.
/// <para>NCCL rings: a communicator is kept warm across queries for the same ordered hosts. <c>NcclRingId</c>
/// names the ring; with <c>NcclReuse</c> false every rank joins it fresh with <c>NcclUniqueId</c> (made by rank 0,
/// dropping whatever communicator it held); with <c>NcclReuse</c> true every rank uses the communicator it
/// already holds for that ring (the router checked with <see cref="NcclRingCheck"/> that all of them do).</para>
/// </summary>
public sealed record ShardRing
{
    public required int Rank { get; init; }

    public required int WorldSize { get; init; }

    public required IReadOnlyList<string> HostIds { get; init; }

    public required IReadOnlyList<string> DataEndpoints { get; init; }

    public required int CollectiveTimeoutMs { get; init; }

    public byte[]? NcclUniqueId { get; init; }

    public string NcclRingId { get; init; } = "";

    public bool NcclReuse { get; init; }
}

/// <summary>
/// Internal: what every host of a query computes: the attention mode and the router's plan, the prompt's token ids,
/// sampling, and the per-query choices the router resolved (compressor, prefill attention, decode KV store).
/// </summary>
public sealed record ShardWork
{
    public required AttentionMode Mode { get; init; }

    public required ShardPlan Plan { get; init; }

    public CompressorKind Compressor { get; init; }

    public required IReadOnlyList<int> Document { get; init; }

    public required IReadOnlyList<int> Question { get; init; }

    public required GenerationOptions Generation { get; init; }

    public PrefillAttentionOptions? PrefillAttention { get; init; }

    public KvStoreOptions? KvStore { get; init; }
}

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
