namespace ApbCluster.Contracts;

/// <summary>
/// Submit a query to the router. Replies (QueryAccepted, PrefillProgress, TokenChunk,
/// QueryCompleted | QueryFailed | RouterBusy) go to the Sender, so no reply-to field.
/// <c>EchoPrompt</c>: QueryCompleted carries the prompt's token ids (as the router built them) too.
/// </summary>
public sealed record SubmitQuery(
    string QueryId,
    QueryContext Context,
    string Question,
    GenerationOptions Generation,
    AttentionMode Mode,
    ApbOptions? Apb,
    BlockSplitMode Split = BlockSplitMode.Default,
    bool EchoPrompt = false,
    PrefillAttentionOptions? PrefillAttention = null,
    KvStoreOptions? KvStore = null) : IQueryMessage;

/// <summary>The plan the router made: hosts in ring order, each host's block length (the last blocks may end in
/// padding beyond the document), the anchor and passing lengths, and what they were made for. <c>Compressor</c>: the
/// one that picks the passing tokens, resolved (null: the plan passes none).</summary>
public sealed record QueryPlanSummary(
    IReadOnlyList<string> HostsInRingOrder,
    IReadOnlyList<int> BlockLengths,
    int AnchorLength,
    int PassingLength,
    AttentionMode Mode = AttentionMode.Dense,
    int DocumentTokens = 0,
    int QuestionTokens = 0,
    BlockSplitMode Split = BlockSplitMode.Default,
    CompressorKind? Compressor = null);

public sealed record QueryAccepted(string QueryId, QueryPlanSummary Plan) : IQueryMessage;

/// <summary>Host finished prefill of layer <c>Layer</c> (1-based) out of <c>Layers</c>.</summary>
public sealed record PrefillProgress(string QueryId, string Host, int Layer, int Layers) : IQueryMessage;

/// <summary>Generated tokens in order; Index is the chunk's sequence number from 0.</summary>
public sealed record TokenChunk(string QueryId, int Index, IReadOnlyList<int> TokenIds, string Text) : IQueryMessage;

public enum FinishReason : byte
{
    Length = 0,
    Stop = 1,
    EndOfSequence = 2,
    Cancelled = 3,
}

/// <summary>Wall time per phase in milliseconds.</summary>
public sealed record PhaseTimings(
    double QueueMs,
    double PlanMs,
    double PrefillMs,
    double TimeToFirstTokenMs,
    double DecodeMs,
    double TotalMs);

/// <summary>
/// When the router received, dispatched, saw start and finished a query, in milliseconds on the router's own monotonic
/// clock (one clock for every query of that router instance), so that callers can see from outside which queries
/// overlapped. <c>DispatchedMs</c>: it left the router's queue and its hosts were given their ranks (a host may still
/// hold a rank until one of its running queries ends). <c>StartedMs</c>: its first host reported a prefill layer done,
/// so [StartedMs, FinishedMs] lies inside the time the query was computing.
/// </summary>
public sealed record RouterClock(double SubmittedMs, double DispatchedMs, double StartedMs, double FinishedMs);

/// <summary>The answer. <c>TokenIds</c>: the generated ids; <c>PromptTokenIds</c>: the prompt (document then
/// question part, as the router built it), only when the query asked for <c>EchoPrompt</c>, else empty.
/// <c>Clock</c>: the query's times on the router's clock (null from a sender that does not keep one).</summary>
public sealed record QueryCompleted(
    string QueryId,
    string Answer,
    FinishReason FinishReason,
    PhaseTimings Timings,
    int PromptTokens,
    int GeneratedTokens,
    IReadOnlyList<int>? TokenIds = null,
    IReadOnlyList<int>? PromptTokenIds = null,
    RouterClock? Clock = null) : IQueryMessage
{
    public IReadOnlyList<int>? TokenIds { get; init; } = TokenIds ?? [];
    public IReadOnlyList<int>? PromptTokenIds { get; init; } = PromptTokenIds ?? [];
}

/// <summary>The query failed; FailingHost names the host when one is to blame.</summary>
public sealed record QueryFailed(string QueryId, string Reason, string? FailingHost) : IQueryMessage;

public sealed record CancelQuery(string QueryId) : IQueryMessage;

public sealed record QueryCancelled(string QueryId) : IQueryMessage;

/// <summary>
/// What <see cref="Serialization.ApbSerializer"/> delivers in place of bytes it cannot decode (truncated payload,
/// unknown manifest, unknown format version), so the receiver can answer the sender instead of the message
/// vanishing on the wire. The router answers a malformed query with <see cref="QueryFailed"/> carrying
/// <see cref="Reason"/>. <see cref="QueryId"/> is the payload's query id when it could still be read, else "".
/// </summary>
public sealed record MalformedMessage(string Manifest, int Length, string Reason, string QueryId) : IQueryMessage;

/// <summary>Admission refused: the router's bounded queue is full. Retry later.</summary>
public sealed record RouterBusy(string QueryId, int QueueDepth, int QueueCapacity) : IQueryMessage;
