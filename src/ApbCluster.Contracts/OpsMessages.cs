namespace ApbCluster.Contracts;

/// <summary>
/// Stop planning new queries on a host (maintenance, a flaky GPU); queries already running
/// there finish. The router answers <see cref="HostDrainChanged"/>.
/// </summary>
public sealed record DrainHost(string HostId) : IApbMessage;

/// <summary>Put a drained host back into planning. The router answers <see cref="HostDrainChanged"/>.</summary>
public sealed record UndrainHost(string HostId) : IApbMessage;

/// <summary>Known is false when the router has no such host (nothing changed then).</summary>
public sealed record HostDrainChanged(string HostId, bool Draining, bool Known) : IApbMessage;

/// <summary>Ask the router for the queries it holds (queued and running); reply <see cref="QueryList"/>.</summary>
public sealed record ListQueries : IApbMessage
{
    public static readonly ListQueries Instance = new();
}

/// <summary>One query as the router sees it. Phase: queued, prefill, decode.</summary>
public sealed record QueryInfo(
    string QueryId,
    string Phase,
    long SubmittedUnixMs,
    int PromptTokens,
    int GeneratedTokens,
    IReadOnlyList<string> Hosts);

public sealed record QueryList(IReadOnlyList<QueryInfo> Queries) : IApbMessage;

/// <summary>
/// Follow a running query: the router sends the Sender a copy of the query's PrefillProgress,
/// TokenChunk and the final QueryCompleted / QueryFailed, or <see cref="QueryNotFound"/> at once.
/// </summary>
public sealed record TraceQuery(string QueryId) : IQueryMessage;

/// <summary>The router holds no query with this id (finished, never submitted, or lost in a hand-over).</summary>
public sealed record QueryNotFound(string QueryId) : IQueryMessage;
