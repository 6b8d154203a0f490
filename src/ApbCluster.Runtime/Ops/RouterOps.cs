using Akka.Actor;
using ApbCluster.Contracts;
using ApbCluster.Runtime.Metrics;

namespace ApbCluster.Runtime.Ops;

/// <summary>
/// The router's operations bookkeeping, kept out of QueryRouter so that file stays about
/// planning: drained hosts, the queries it holds (for `query list`), trace subscribers (for
/// `query trace`) and the query metrics. Wiring in QueryRouter (one line each):
/// <code>
/// Receive&lt;DrainHost&gt;(m =&gt; Sender.Tell(_ops.Drain(m.HostId, draining: true, _hosts.Contains(m.HostId))));
/// Receive&lt;UndrainHost&gt;(m =&gt; Sender.Tell(_ops.Drain(m.HostId, draining: false, _hosts.Contains(m.HostId))));
/// Receive&lt;ListQueries&gt;(_ =&gt; Sender.Tell(_ops.List()));
/// Receive&lt;TraceQuery&gt;(m =&gt; _ops.Trace(m.QueryId, Sender));
/// // on admission:              _ops.Submitted(query);
/// // on every message relayed to the caller (QueryAccepted, PrefillProgress, TokenChunk,
/// // QueryCompleted, QueryFailed, QueryCancelled): _ops.Observe(message);
/// // when planning:             skip hosts where _ops.IsDrained(hostId)
/// // on RouterBusy:             ApbMetrics.QueryRefused("busy");
/// </code>
/// Not thread-safe: call from the router actor only.
/// </summary>
public sealed class RouterOps(Func<DateTimeOffset>? clock = null)
{
    private sealed class Tracked(SubmitQuery query, DateTimeOffset submitted)
    {
        public SubmitQuery Query { get; } = query;
        public DateTimeOffset Submitted { get; } = submitted;
        public string Phase { get; set; } = "queued";
        public IReadOnlyList<string> Hosts { get; set; } = [];
        public int PromptTokens { get; set; }
        public int GeneratedTokens { get; set; }
        public List<IActorRef> Tracers { get; } = [];
    }

    private readonly Func<DateTimeOffset> _clock = clock ?? (() => DateTimeOffset.UtcNow);
    private readonly HashSet<string> _drained = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Tracked> _queries = new(StringComparer.Ordinal);

    public IReadOnlyCollection<string> DrainedHosts => _drained;

    public bool IsDrained(string hostId) => _drained.Contains(hostId);

    /// <summary>Drain state survives the host re-registering; it is lost on a singleton hand-over.</summary>
    public HostDrainChanged Drain(string hostId, bool draining, bool known)
    {
        if (!known) return new HostDrainChanged(hostId, _drained.Contains(hostId), Known: false);
        if (draining) _drained.Add(hostId);
        else _drained.Remove(hostId);
        return new HostDrainChanged(hostId, draining, Known: true);
    }

    public void Submitted(SubmitQuery query)
    {
        _queries[query.QueryId] = new Tracked(query, _clock());
        ApbMetrics.QuerySubmitted();
    }

    public QueryList List() => new(_queries.Values
        .OrderBy(q => q.Submitted)
        .Select(q => new QueryInfo(q.Query.QueryId, q.Phase, q.Submitted.ToUnixTimeMilliseconds(), q.PromptTokens, q.GeneratedTokens, q.Hosts))
        .ToList());

    public void Trace(string queryId, IActorRef tracer)
    {
        if (_queries.TryGetValue(queryId, out var q)) q.Tracers.Add(tracer);
        else tracer.Tell(new QueryNotFound(queryId));
    }

    /// <summary>Updates the query's phase, copies the message to tracers, records metrics, forgets finished queries.</summary>
    public void Observe(IQueryMessage message)
    {
        if (!_queries.TryGetValue(message.QueryId, out var q)) return;
        switch (message)
        {
            case QueryAccepted accepted:
                q.Phase = "prefill";
                q.Hosts = accepted.Plan.HostsInRingOrder;
                break;
            case PrefillProgress:
                q.Phase = "prefill";
                break;
            case TokenChunk chunk:
                q.Phase = "decode";
                q.GeneratedTokens += chunk.TokenIds.Count;
                break;
            case QueryCompleted done:
                q.PromptTokens = done.PromptTokens;
                ApbMetrics.QueryCompleted(done.FinishReason == FinishReason.Cancelled ? "cancelled" : "ok", done.Timings, done.GeneratedTokens, done.PromptTokens);
                break;
            case QueryFailed failed:
                ApbMetrics.QueryFailed(hostFault: failed.FailingHost is not null);
                break;
            case QueryCancelled:
                ApbMetrics.QueryCancelled();
                break;
        }
        foreach (var tracer in q.Tracers) tracer.Tell(message);
        if (message is QueryCompleted or QueryFailed or QueryCancelled) _queries.Remove(message.QueryId);
    }
}
