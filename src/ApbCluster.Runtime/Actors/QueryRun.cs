using System.Diagnostics;
using System.Text;
using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using Akka.Remote;
using ApbCluster.Contracts;
using ApbCluster.Parallel.Plan;
using ApbCluster.Engine;

namespace ApbCluster.Runtime.Actors;

/// <summary>
/// One query, a child of the router: validate and tokenize, plan, hand every host its rank
/// (RunShard, naming the NCCL ring on GPUs), forward prefill progress, stream the last host's tokens as
/// TokenChunks, then QueryCompleted. GPU queries on several hosts run on a warm NCCL ring: the router passes
/// the ring it holds for exactly these hosts; every member must confirm it still holds the ring's communicator
/// (NcclRingCheck), otherwise, or without a ring, rank 0 makes a fresh NCCL id for a new ring (RingFormed to
/// the router). A query that does not end cleanly gives its ring up (RingBroken), so the next one forms anew. It ends with exactly one of QueryCompleted / QueryFailed /
/// QueryCancelled to the caller, and on failure, cancel or deadline tells every host to drop the
/// query (they free their KV). A host that dies, becomes unreachable or reports a failure fails the
/// query naming it. Everything it tells the caller goes to the router too (<see cref="Relayed"/>) for
/// query list, trace and metrics.
/// </summary>
public sealed class QueryRun : ReceiveActor, IWithTimers
{
    /// <summary>A copy of a message sent to the caller, for the router's RouterOps (local only).</summary>
    public sealed record Relayed(IQueryMessage Message) : INoSerializationVerificationNeeded;

    /// <summary>To the router: this query formed a new NCCL ring (local only).</summary>
    public sealed record RingFormed(NcclRingTable.Ring Ring) : INoSerializationVerificationNeeded;

    /// <summary>To the router: the ring must not be reused (a query on it did not end cleanly, or a member no longer holds it).</summary>
    public sealed record RingBroken(NcclRingTable.Ring Ring, string Reason) : INoSerializationVerificationNeeded;

    /// <summary>To the router: a host was gone before the query's work began (no progress, no token sent); plan it again
    /// without that host (local only).</summary>
    public sealed record Replan(SubmitQuery Query, IActorRef Caller, string HostId, string Reason) : INoSerializationVerificationNeeded;

    /// <summary>The router's clock (<see cref="Stopwatch"/> timestamps): its origin and when the query arrived.</summary>
    public sealed record RouterTimes(long Origin, long SubmittedAt);

    private sealed class Deadline
    {
        public static readonly Deadline Instance = new();
    }

    private sealed class BlameNow
    {
        public static readonly BlameNow Instance = new();
    }

    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly SubmitQuery _query;
    private PrefillAttentionOptions? _prefillAttention; // resolved: null is full attention
    private KvStoreOptions? _kvStore; // resolved: null is the full store
    private readonly IActorRef _caller;
    private readonly RouterSettings _settings;
    private readonly double _queueMs;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private int _streamed; // chars of _answer sent in TokenChunks
    private int _nextChunk;
    private readonly List<RegisterHost> _hosts = [];
    private readonly Dictionary<string, ShardFailed> _failures = new();
    private readonly HashSet<string> _finished = [];
    private readonly List<int> _tokens = [];
    private readonly StringBuilder _answer = new();
    private readonly NcclRingTable.Ring? _knownRing;
    private readonly HashSet<string> _ringReady = [];
    private NcclRingTable.Ring? _checking, _ring;
    private bool _awaitingNcclId;
    private QueryValidation.Prompt? _prompt;
    private ApbPlan? _plan;
    private Func<int, string>? _decode;
    private double _planMs, _prefillMs, _firstTokenMs;
    private bool _done, _dispatched, _started;
    private readonly bool _mayReplan;
    private readonly RouterTimes? _times;
    private double _dispatchedMs, _startedMs;

    /// <summary>The query's id as the hosts see it. A replanned run gets its own, so that hosts still dropping the
    /// first run (and its data connections) never mistake the second for a duplicate of it.</summary>
    private readonly string _runId;

    /// <param name="ring">The router's warm NCCL ring for exactly these hosts (in this order), if any.</param>
    /// <param name="mayReplan">A host found gone before the work began sends the query back to the router (once per query).</param>
    /// <param name="prompt">The prompt the router already tokenized (null: tokenize here).</param>
    /// <param name="times">The router's clock, for <see cref="RouterClock"/> in QueryCompleted.</param>
    public QueryRun(SubmitQuery query, IActorRef caller, IReadOnlyList<RegisterHost> hosts, RouterSettings settings, double queueMs,
        NcclRingTable.Ring? ring = null, bool mayReplan = false, QueryValidation.Prompt? prompt = null, RouterTimes? times = null)
    {
        _prompt = prompt;
        _times = times;
        _mayReplan = mayReplan;
        _runId = mayReplan ? query.QueryId : $"{query.QueryId}~replanned";
        _query = query;
        _caller = caller;
        _settings = settings;
        _queueMs = queueMs;
        _knownRing = ring;
        _hosts.AddRange(hosts);

        Receive<NcclIdReply>(OnNcclId);
        Receive<NcclRingStatus>(OnRingStatus);
        Receive<PrefillProgress>(OnProgress);
        Receive<ShardTokens>(OnTokens);
        Receive<ShardFinished>(OnFinished);
        Receive<ShardFailed>(OnFailed);
        Receive<BlameNow>(_ => Blame());
        Receive<CancelQuery>(_ => Cancel(Sender));
        Receive<Deadline>(_ => Fail($"query {_query.QueryId} exceeded its deadline of {_settings.QueryTimeout.TotalSeconds:0.#}s ({Phase()})", null));
        Receive<Terminated>(t => HostLost(t.ActorRef, "its actor stopped or its node left the cluster"));
        Receive<ClusterEvent.UnreachableMember>(m => HostUnreachable(m.Member.Address));
        Receive<DisassociatedEvent>(e => HostDisconnected(e.RemoteAddress));
        Receive<ClusterEvent.IClusterDomainEvent>(_ => { });
    }

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(SubmitQuery query, IActorRef caller, IReadOnlyList<RegisterHost> hosts, RouterSettings settings, double queueMs,
        NcclRingTable.Ring? ring = null, bool mayReplan = false, QueryValidation.Prompt? prompt = null, RouterTimes? times = null) =>
        Akka.Actor.Props.Create(() => new QueryRun(query, caller, hosts, settings, queueMs, ring, mayReplan, prompt, times));

    /// <summary>The hosts a query runs on, from the live hosts in ring order: dense uses the first one only.</summary>
    public static IReadOnlyList<RegisterHost> HostsFor(AttentionMode mode, IReadOnlyList<RegisterHost> hosts) =>
        mode == AttentionMode.Dense && hosts.Count > 1 ? [hosts[0]] : hosts;

    /// <summary>Every host is a GPU and there are several: the ranks talk over an NCCL ring.</summary>
    public static bool NeedsNcclRing(IReadOnlyList<RegisterHost> hosts) =>
        hosts.Count > 1 && hosts.All(h => h.Device.StartsWith("cuda", StringComparison.Ordinal));

    protected override void PreStart()
    {
        Timers.StartSingleTimer("deadline", Deadline.Instance, _settings.QueryTimeout);
        var (prompt, error) = _prompt is { } given ? (given, null) : QueryValidation.Tokenize(_query, _settings);
        var (prefillAttention, attentionError) = QueryValidation.PrefillAttention(_query, _settings);
        var (kvStore, kvError) = QueryValidation.KvStore(_query, _settings);
        if ((error ?? attentionError ?? kvError) is { } reason)
        {
            Fail(reason, null);
            return;
        }
        _prefillAttention = prefillAttention;
        _kvStore = kvStore;
        _prompt = prompt!;
        try
        {
            if (_query.Mode == AttentionMode.Dense && _hosts.Count > 1) _hosts.RemoveRange(1, _hosts.Count - 1); // dense: one host
            _plan = QueryPlanning.Plan(_query.Mode, _hosts.Count, _prompt.Document.Length, _prompt.Question.Length, _prompt.TemplateOffset,
                _query.Apb?.AnchorLength, _query.Apb?.PassingLength, QueryPlanning.ToSplit(_query.Split, _settings.DefaultSplit), _settings.Model);
        }
        catch (PlanException e)
        {
            Fail($"cannot plan the query on {_hosts.Count} host(s): {e.Message}", null);
            return;
        }
        _planMs = _clock.Elapsed.TotalMilliseconds;
        _decode = _settings.Codec?.CreateDecoder();
        foreach (var h in _hosts) Context.Watch(h.Host);
        Cluster.Get(Context.System).Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents, typeof(ClusterEvent.UnreachableMember));
        Context.System.EventStream.Subscribe(Self, typeof(DisassociatedEvent));
        Send(new QueryAccepted(_query.QueryId, new QueryPlanSummary(
            _hosts.Select(h => h.HostId).ToList(), _plan.Blocks.Select(b => b.Length).ToList(), _plan.AnchorLength, _plan.PassingLength,
            QueryPlanning.ToAttention(_plan.Mode), _plan.DocumentLength, _plan.QuestionLength, QueryPlanning.ToContract(_plan.Split),
            _plan.Mode == ParallelMode.Apb && _plan.PassingLength > 0 ? Compressor : null)));

        var gpus = _hosts.Count(h => h.Device.StartsWith("cuda", StringComparison.Ordinal));
        if (gpus > 0 && gpus < _hosts.Count) Fail("the hosts mix CPU and GPU devices; a query's ranks must all use one data plane", null);
        else if (!NeedsNcclRing(_hosts)) Dispatch(); // CPU hosts (TCP mesh), or one GPU (no NCCL needed)
        else if (_knownRing is { } ring && NcclRingTable.MembersOf(_hosts).SequenceEqual(ring.Members)) CheckRing(ring);
        else NewRing();
    }

    protected override void PostStop()
    {
        Cluster.Get(Context.System).Unsubscribe(Self);
        Context.System.EventStream.Unsubscribe(Self);
    }

    /// <summary>Reuse only if every member still holds the ring's communicator, idle.</summary>
    private void CheckRing(NcclRingTable.Ring ring)
    {
        _checking = ring;
        foreach (var h in _hosts) h.Host.Tell(new NcclRingCheck(_runId, ring.RingId));
    }

    private void OnRingStatus(NcclRingStatus status)
    {
        if (_done || _checking is not { } ring || status.RingId != ring.RingId) return;
        if (!status.Ready)
        {
            _checking = null;
            _log.Info("query {0}: host {1} no longer holds NCCL ring {2}; forming a new ring", _query.QueryId, status.HostId, ring.RingId);
            Context.Parent.Tell(new RingBroken(ring, $"host {status.HostId} no longer holds it"));
            NewRing();
            return;
        }
        _ringReady.Add(status.HostId);
        if (!_hosts.All(h => _ringReady.Contains(h.HostId))) return;
        _checking = null;
        _ring = ring;
        Dispatch(reuse: true);
    }

    /// <summary>Rank 0 makes the NCCL unique id of a new ring (its process hosts NCCL's bootstrap root).</summary>
    private void NewRing()
    {
        _awaitingNcclId = true;
        _hosts[0].Host.Tell(new NcclIdRequest(_runId));
    }

    private void OnNcclId(NcclIdReply reply)
    {
        if (_done || !_awaitingNcclId) return;
        _awaitingNcclId = false;
        if (reply.Id is null)
        {
            Fail(reply.Error ?? "rank 0 returned no NCCL id", _hosts[0].HostId);
            return;
        }
        _ring = new NcclRingTable.Ring(Guid.NewGuid().ToString("N"), _hosts.ToList(), reply.Id);
        Context.Parent.Tell(new RingFormed(_ring));
        Dispatch(reuse: false);
    }

    /// <summary>Resolved here, like every per-query choice, so the plan summary and the hosts name the same one.</summary>
    private CompressorKind Compressor => CompressorNames.Resolve(_query.Apb?.Compressor ?? CompressorKind.Default);

    /// <summary>The anchor broadcast: every host gets the document, the question, its rank and the data plane.</summary>
    private void Dispatch(bool reuse = false)
    {
        _dispatched = true;
        _dispatchedMs = RouterNow();
        var ids = _hosts.Select(h => h.HostId).ToList();
        var endpoints = _hosts.Select(h => h.DataEndpoint).ToList();
        var ncclId = _ring is { } r && !reuse ? r.NcclId : null;
        var work = new ShardWork
        {
            Mode = _query.Mode,
            Plan = QueryPlanning.ToShard(_plan!),
            Compressor = Compressor,
            Document = _prompt!.Document,
            Question = _prompt.Question,
            Generation = _query.Generation,
            PrefillAttention = _prefillAttention,
            KvStore = _kvStore,
        };
        for (int rank = 0; rank < _hosts.Count; rank++)
        {
            var ring = new ShardRing
            {
                Rank = rank,
                WorldSize = _hosts.Count,
                HostIds = ids,
                DataEndpoints = endpoints,
                CollectiveTimeoutMs = (int)_settings.CollectiveTimeout.TotalMilliseconds,
                NcclUniqueId = ncclId,
                NcclRingId = _ring?.RingId ?? "",
                NcclReuse = reuse,
            };
            _hosts[rank].Host.Tell(new RunShard(_runId, Self, ring, work));
        }
        _log.Info("query {0}: {1} on {2}{3}", _query.QueryId, _plan, string.Join(" -> ", ids),
            _ring is null ? "" : reuse ? $" (NCCL ring {_ring.RingId}, warm)" : $" (new NCCL ring {_ring.RingId})");
    }

    private void OnProgress(PrefillProgress p)
    {
        if (_done) return;
        if (!_started) _startedMs = RouterNow();
        _started = true;
        if (p.Layer == p.Layers) _prefillMs = Math.Max(_prefillMs, _clock.Elapsed.TotalMilliseconds - _planMs);
        Send(p with { QueryId = _query.QueryId });
    }

    private void OnTokens(ShardTokens chunk)
    {
        if (_done) return;
        if (!_started) _startedMs = RouterNow();
        _started = true;
        if (_tokens.Count == 0) _firstTokenMs = _clock.Elapsed.TotalMilliseconds;
        _tokens.AddRange(chunk.TokenIds);
        var text = _decode is null ? "" : string.Concat(chunk.TokenIds.Select(_decode));
        _answer.Append(text);
        // Stream only what no stop string can still cut: a stop's start is held back until it is
        // ruled out (streamed with the next chunk) or confirmed (cut from the answer).
        var answer = _answer.ToString();
        var stops = _query.Generation.StopStrings;
        var stop = StopStrings.FirstStop(answer, stops);
        var end = Math.Max(_streamed, stop >= 0 ? stop : StopStrings.SafeLength(answer, stops));
        Send(new TokenChunk(_query.QueryId, chunk.Index, chunk.TokenIds, answer[_streamed..end]));
        _streamed = end;
        _nextChunk = chunk.Index + 1;
        if (stop >= 0)
        {
            _answer.Length = stop;
            Complete(FinishReason.Stop); // the hosts are told to stop early
        }
    }

    private void OnFinished(ShardFinished f)
    {
        if (_done) return;
        _finished.Add(f.HostId);
        if (_finished.Count < _hosts.Count) return;
        var eos = _settings.Codec?.EosIds ?? [];
        Complete(_tokens.Count > 0 && eos.Contains(_tokens[^1]) ? FinishReason.EndOfSequence : FinishReason.Length);
    }

    private void OnFailed(ShardFailed f)
    {
        if (_done) return;
        if (!f.DataPlane)
        {
            Fail(f.Reason, f.BlamedHost ?? f.HostId); // the host's own error
            return;
        }
        // A data-plane failure is seen by several hosts at once, and a host may blame a live peer that
        // merely closed its connections first: collect reports briefly, then blame.
        _failures.TryAdd(f.HostId, f);
        if (_failures.Count == 1) Timers.StartSingleTimer("blame", BlameNow.Instance, _settings.BlameGrace);
        if (_failures.Count + _finished.Count >= _hosts.Count - 1) Blame();
    }

    /// <summary>The host that never reported is the one that died; otherwise the most blamed peer.</summary>
    private void Blame()
    {
        if (_done || _failures.Count == 0) return;
        var silent = _hosts.Select(h => h.HostId).Where(id => !_failures.ContainsKey(id) && !_finished.Contains(id)).ToList();
        var first = _failures.Values.First();
        var blamed = silent.Count == 1 ? silent[0]
            : _failures.Values.Where(f => f.BlamedHost is not null).GroupBy(f => f.BlamedHost!).OrderByDescending(g => g.Count()).Select(g => g.Key).FirstOrDefault()
              ?? first.BlamedHost;
        var evidence = _failures.Values.FirstOrDefault(f => f.BlamedHost == blamed) ?? first;
        var reason = blamed is null ? evidence.Reason : $"host {blamed} failed or is unreachable: {evidence.Reason}";
        if (silent.Count == 1 && blamed == silent[0]) Gone(reason, blamed);
        else Fail(reason, blamed);
    }

    private void HostLost(IActorRef actor, string why)
    {
        var host = _hosts.FirstOrDefault(h => h.Host.Equals(actor));
        if (host is not null && !_finished.Contains(host.HostId)) Gone($"host {host.HostId} is gone: {why}", host.HostId);
    }

    private void HostUnreachable(Address address)
    {
        var host = _hosts.FirstOrDefault(h => h.Host.Path.Address.Equals(address));
        if (host is not null && !_finished.Contains(host.HostId)) Gone($"host {host.HostId} became unreachable (node {address})", host.HostId);
    }

    /// <summary>The remoting connection to a host's node ended (its process died: the kernel closed its sockets). An
    /// NCCL rank waiting on that host notices nothing until its watchdog deadline and the failure detector takes
    /// seconds, so this fails the query at once, naming the host.</summary>
    private void HostDisconnected(Address address)
    {
        var host = _hosts.FirstOrDefault(h => h.Host.Path.Address.Equals(address));
        if (host is not null && !_finished.Contains(host.HostId))
            Gone($"host {host.HostId} is gone: its node {address} closed the connection to the router (process exited or killed?)", host.HostId);
    }

    /// <summary>Both the caller and whoever cancelled (e.g. `query cancel` in the admin shell) hear it.</summary>
    private void Cancel(IActorRef canceller)
    {
        if (_done) return;
        StopHosts();
        GiveUpRing("the query was cancelled");
        Send(new QueryCancelled(_query.QueryId));
        if (!canceller.Equals(_caller) && !canceller.IsNobody()) canceller.Tell(new QueryCancelled(_query.QueryId));
        _log.Info("query {0} cancelled after {1:0} ms", _query.QueryId, _clock.Elapsed.TotalMilliseconds);
        Finish();
    }

    /// <summary>
    /// A host died, left or went silent. Before the caller saw any work (no progress, no token) the query is sent back
    /// to the router to run on the others: it was planned in the moment between the host's death and the router
    /// learning of it. After that the caller is told, naming the host: the work done so far is lost.
    /// </summary>
    private void Gone(string reason, string hostId)
    {
        if (_done) return;
        if (!_mayReplan || _started)
        {
            Fail(reason, hostId);
            return;
        }
        StopHosts();
        GiveUpRing($"query {_query.QueryId} is planned again: {reason}");
        Context.Parent.Tell(new Replan(_query, _caller, hostId, reason));
        Finish();
    }

    private void Fail(string reason, string? host)
    {
        if (_done) return;
        StopHosts();
        GiveUpRing($"query {_query.QueryId} failed: {reason}");
        Send(new QueryFailed(_query.QueryId, reason, host));
        _log.Warning("query {0} failed{1}: {2}", _query.QueryId, host is null ? "" : $" (host {host})", reason);
        Finish();
    }

    private void Complete(FinishReason reason)
    {
        if (_done) return;
        if (_streamed < _answer.Length) // held back as a possible stop string that never completed
            Send(new TokenChunk(_query.QueryId, _nextChunk, [], _answer.ToString(_streamed, _answer.Length - _streamed)));
        if (_finished.Count < _hosts.Count)
        {
            StopHosts(); // stopped early (stop string): the ranks abort mid-decode
            GiveUpRing("the query stopped early");
        }
        var now = _clock.Elapsed.TotalMilliseconds;
        var ttft = _tokens.Count > 0 ? _firstTokenMs : now;
        var timings = new PhaseTimings(_queueMs, _planMs, _prefillMs, ttft, now - ttft, _queueMs + now);
        var clock = _times is { } t ? new RouterClock(
            Stopwatch.GetElapsedTime(t.Origin, t.SubmittedAt).TotalMilliseconds, _dispatchedMs, _started ? _startedMs : _dispatchedMs, RouterNow()) : null;
        Send(new QueryCompleted(_query.QueryId, _answer.ToString(), reason, timings,
            _prompt!.Document.Length + _prompt.Question.Length, _tokens.Count, _tokens.ToArray(),
            _query.EchoPrompt ? [.. _prompt.Document, .. _prompt.Question] : [], clock));
        _log.Info("query {0} completed: {1} tokens, ttft {2:0} ms, total {3:0} ms", _query.QueryId, _tokens.Count, ttft, now);
        Finish();
    }

    /// <summary>The hosts abort their communicators after a run that did not end cleanly; the router must not offer the ring again.</summary>
    private void GiveUpRing(string reason)
    {
        if (_ring is { } ring && _dispatched) Context.Parent.Tell(new RingBroken(ring, reason));
    }

    /// <summary>Every host drops the query (idempotent on hosts that finished or never started it).</summary>
    private void StopHosts()
    {
        if (!_dispatched) return;
        foreach (var h in _hosts) h.Host.Tell(new CancelQuery(_runId));
    }

    private void Send(IQueryMessage message)
    {
        _caller.Tell(message);
        Context.Parent.Tell(new Relayed(message));
    }

    private void Finish()
    {
        _done = true;
        Context.Stop(Self);
    }

    /// <summary>Milliseconds on the router's clock (0 without one).</summary>
    private double RouterNow() => _times is { } t ? Stopwatch.GetElapsedTime(t.Origin).TotalMilliseconds : 0;

    private string Phase() =>
        _plan is null ? "planning" : _tokens.Count > 0 ? $"decoding, {_tokens.Count} tokens so far" : _prefillMs > 0 ? "question pass" : "prefill";
}
