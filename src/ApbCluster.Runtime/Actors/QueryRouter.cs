using System.Diagnostics;
using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using Akka.Remote;
using ApbCluster.Contracts;
using ApbCluster.Contracts.Serialization;
using ApbCluster.Runtime.Metrics;
using ApbCluster.Runtime.Ops;

namespace ApbCluster.Runtime.Actors;

/// <summary>
/// The router (a cluster singleton on role "router"): keeps the host registry, admits queries into a
/// bounded queue (RouterBusy when full), and runs up to MaxInFlight at a time, each in a
/// <see cref="QueryRun"/> child that plans it on the live hosts in ring order. Queries share hosts: one starts
/// when every host it is planned on has the free KV memory for its shard (<see cref="KvAdmission"/>), first come
/// first served; one that could not fit even on the idle cluster is refused at once, naming the host and the sizes. Its state is rebuilt
/// after a hand-over because hosts re-register periodically; queries in flight on a lost router die
/// with it (hosts watch their QueryRun and abort). Operations (drain, query list, trace, query
/// metrics) go through <see cref="RouterOps"/>: every message a QueryRun sends its caller comes back
/// here as <see cref="QueryRun.Relayed"/> for it. It also keeps the warm NCCL rings (<see cref="NcclRingTable"/>):
/// a query on the same GPU hosts reuses the ring's communicators; a host that re-registers as a new actor,
/// leaves or becomes unreachable, or a query that does not end cleanly, gives the ring up and the remaining
/// members are told to drop it (<see cref="DropNcclRing"/>). A host enters the registry only after it proved the join
/// secret and showed the router's model fingerprint (<see cref="Security.JoinGate"/>).
/// </summary>
public sealed class QueryRouter : ReceiveActor, IWithTimers
{
    /// <param name="Replanned">A first run found a host gone before it started; this run may not be replanned again.</param>
    /// <param name="Prompt">Tokenized on arrival (for the KV estimate); null when it could not be (the run reports why).</param>
    /// <param name="WaitingFor">What it last waited for (logged once per change, not on every registration).</param>
    private sealed record Waiting(SubmitQuery Query, IActorRef Caller, long QueuedAt, bool Replanned = false,
        QueryValidation.Prompt? Prompt = null, string? WaitingFor = null);

    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Cluster _cluster = Cluster.Get(Context.System);
    private readonly HostRegistry _hosts = new();
    private readonly RouterSettings _settings;
    private readonly LinkedList<Waiting> _queue = new();
    private readonly Dictionary<string, IActorRef> _running = new();
    private readonly RouterOps _ops = new();
    private readonly NcclRingTable _rings = new();
    private readonly KvAdmission _kv = new();
    private readonly Security.JoinGate _gate;
    private long _runs;
    private readonly long _startedAt = Stopwatch.GetTimestamp();

    /// <summary>Re-run the queue once the startup host wait is over.</summary>
    private sealed class HostWaitOver
    {
        public static readonly HostWaitOver Instance = new();
    }

    public QueryRouter(RouterSettings settings)
    {
        _settings = settings;
        _gate = new Security.JoinGate(settings.Join, settings.ModelName, settings.ModelFingerprint);
        Receive<RegisterHost>(OnRegister);
        Receive<GetClusterStatus>(_ => Sender.Tell(Status()));
        Receive<SubmitQuery>(OnSubmit);
        Receive<CancelQuery>(OnCancel);
        Receive<MalformedMessage>(OnMalformed);
        Receive<Terminated>(OnTerminated);
        Receive<QueryRun.Relayed>(r => _ops.Observe(r.Message));
        Receive<QueryRun.RingFormed>(OnRingFormed);
        Receive<QueryRun.RingBroken>(m => GiveUp(_rings.Broken(m.Ring.RingId) ?? m.Ring, m.Reason));
        Receive<DrainHost>(m => Sender.Tell(_ops.Drain(m.HostId, draining: true, _hosts.Contains(m.HostId))));
        Receive<UndrainHost>(m => Sender.Tell(_ops.Drain(m.HostId, draining: false, _hosts.Contains(m.HostId))));
        Receive<ListQueries>(_ => Sender.Tell(_ops.List()));
        Receive<TraceQuery>(m => _ops.Trace(m.QueryId, Sender));
        Receive<ClusterEvent.MemberRemoved>(m => Remove(_hosts.RemoveByAddress(m.Member.Address), $"member {m.Member.Address} was removed"));
        Receive<ClusterEvent.UnreachableMember>(m =>
        {
            _hosts.MarkReachable(m.Member.Address, false);
            GiveUp(_rings.HostsChanged(_hosts.HostsAt(m.Member.Address)), $"node {m.Member.Address} became unreachable");
        });
        Receive<ClusterEvent.ReachableMember>(m => _hosts.MarkReachable(m.Member.Address, true));
        Receive<DisassociatedEvent>(OnDisconnected);
        Receive<HostWaitOver>(_ => StartWaiting());
        Receive<QueryRun.Replan>(OnReplan);
        Receive<ClusterEvent.IMemberEvent>(_ => { });
    }

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(RouterSettings? settings = null) => Akka.Actor.Props.Create(() => new QueryRouter(settings ?? new RouterSettings()));

    protected override void PreStart()
    {
        _cluster.Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents,
            typeof(ClusterEvent.IMemberEvent), typeof(ClusterEvent.IReachabilityEvent));
        Context.System.EventStream.Subscribe(Self, typeof(DisassociatedEvent));
    }

    protected override void PostStop()
    {
        _cluster.Unsubscribe(Self);
        Context.System.EventStream.Unsubscribe(Self);
    }

    /// <summary>
    /// A node's remoting connection closed: on a killed process the kernel closes its sockets at once, seconds
    /// before the failure detector marks it unreachable. Its hosts are left out of new plans until they register
    /// again, so a query sent right after a host died runs on the others instead of failing.
    /// </summary>
    private void OnDisconnected(DisassociatedEvent e)
    {
        var gone = _hosts.MarkGone(e.RemoteAddress);
        if (gone.Count > 0)
            _log.Warning("node {0} closed its connection: host(s) {1} left out of new queries until they register again", e.RemoteAddress, string.Join(", ", gone));
    }

    /// <summary>A run found one of its hosts gone before any work was visible to the caller: run it again, first in line, without it.</summary>
    private void OnReplan(QueryRun.Replan replan)
    {
        _hosts.MarkGone(replan.HostId);
        _log.Warning("query {0}: host {1} is gone ({2}); planning it again without that host", replan.Query.QueryId, replan.HostId, replan.Reason);
        _queue.AddFirst(new Waiting(replan.Query, replan.Caller, Stopwatch.GetTimestamp(), Replanned: true, Prompt: PromptOf(replan.Query)));
    }

    private void OnRegister(RegisterHost registration)
    {
        var address = registration.Host.Path.Address.HasGlobalScope ? registration.Host.Path.Address : _cluster.SelfAddress;
        // Before the registry: a host that cannot prove the join secret, or serves another model, is never planned.
        if (_gate.Check(registration, address) is { } answer)
        {
            if (answer is HostRefused refused && _gate.ShouldLog(registration.Host))
                _log.Warning("host refused: {0}", refused.Message);
            Sender.Tell(answer);
            return;
        }
        if (_hosts.Upsert(registration, address))
        {
            Context.Watch(registration.Host);
            _log.Info("host {0} registered from {1} ({2}, data {3}); {4} host(s) known", registration.HostId, address,
                registration.Device, registration.DataEndpoint, _hosts.Count);
            GiveUp(_rings.HostsChanged([registration.HostId]), $"host {registration.HostId} registered as a new actor");
        }
        Sender.Tell(new HostRegistered(registration.HostId, Self));
        if (_queue.Count > 0) StartWaiting(); // queries held for a first host
    }

    private void Remove(IReadOnlyList<string> removed, string why)
    {
        foreach (var hostId in removed)
            _log.Warning("host {0} removed: {1}; {2} host(s) left", hostId, why, _hosts.Count);
        GiveUp(_rings.HostsChanged(removed), $"host(s) {string.Join(", ", removed)} removed: {why}");
    }

    /// <summary>A query formed a new ring; rings that shared a host with it are given up (their other members drop
    /// them now; the shared hosts replace theirs when they join the new ring).</summary>
    private void OnRingFormed(QueryRun.RingFormed formed)
    {
        foreach (var old in _rings.Formed(formed.Ring))
            GiveUp(old, $"replaced by ring {formed.Ring.RingId}", except: formed.Ring);
        _log.Info("NCCL ring {0} formed on {1}", formed.Ring.RingId, string.Join(" -> ", formed.Ring.Hosts.Select(h => h.HostId)));
    }

    private void GiveUp(IEnumerable<NcclRingTable.Ring> rings, string why)
    {
        foreach (var ring in rings) GiveUp(ring, why);
    }

    /// <summary>Tells the ring's members (but those of <paramref name="except"/>) to drop its communicator.</summary>
    private void GiveUp(NcclRingTable.Ring ring, string why, NcclRingTable.Ring? except = null)
    {
        _log.Info("NCCL ring {0} given up: {1}", ring.RingId, why);
        foreach (var h in ring.Hosts.Where(h => except is null || !except.Has(h.HostId)))
            h.Host.Tell(new DropNcclRing(ring.RingId, why));
    }

    private void OnSubmit(SubmitQuery query)
    {
        if (string.IsNullOrWhiteSpace(query.QueryId))
        {
            Sender.Tell(new QueryFailed(query.QueryId ?? "", "the query id is empty", null));
            return;
        }
        if (_running.ContainsKey(query.QueryId) || _queue.Any(w => w.Query.QueryId == query.QueryId))
        {
            Sender.Tell(new QueryFailed(query.QueryId, $"a query with id '{query.QueryId}' is already queued or running", null));
            return;
        }
        if (_queue.Count >= _settings.QueueCapacity)
        {
            _log.Info("query {0} refused: queue full ({1} waiting, {2} running)", query.QueryId, _queue.Count, _running.Count);
            Sender.Tell(new RouterBusy(query.QueryId, _queue.Count, _settings.QueueCapacity));
            ApbMetrics.QueryRefused("busy");
            return;
        }
        var prompt = PromptOf(query);
        _ops.Submitted(query);
        if (prompt is not null && KvAdmission.Estimate(query, prompt, Planned(query.Mode), _settings) is { } need
            && KvAdmission.NeverFits(need, Planned(query.Mode)) is { } tooLarge)
        {
            _log.Info("query {0} refused: {1}", query.QueryId, tooLarge);
            Reply(Sender, new QueryFailed(query.QueryId, tooLarge, null));
            ApbMetrics.QueryRefused("kv-memory");
            return;
        }
        _queue.AddLast(new Waiting(query, Sender, Stopwatch.GetTimestamp(), Prompt: prompt));
        StartWaiting();
    }

    /// <summary>The prompt as the run will build it; null on bad input (its run fails with the reason, as before).</summary>
    private QueryValidation.Prompt? PromptOf(SubmitQuery query) => QueryValidation.Tokenize(query, _settings).Prompt;

    private IReadOnlyList<RegisterHost> Available() => _hosts.RingOrder().Where(h => !_ops.IsDrained(h.HostId)).ToList();

    private IReadOnlyList<RegisterHost> Planned(AttentionMode mode) => QueryRun.HostsFor(mode, Available());

    private void StartWaiting()
    {
        while (_running.Count < _settings.MaxInFlight && _queue.First is { } first)
        {
            var (query, caller, queuedAt, replanned, prompt, waitedFor) = first.Value;
            var hosts = Available();
            if (hosts.Count == 0 && _hosts.Count == 0 && Stopwatch.GetElapsedTime(_startedAt) < _settings.HostWait)
            {
                // Just started (a hand-over empties the registry): the hosts re-register within their interval.
                Timers.StartSingleTimer("host-wait", HostWaitOver.Instance, _settings.HostWait - Stopwatch.GetElapsedTime(_startedAt));
                break;
            }
            _queue.RemoveFirst();
            if (hosts.Count == 0)
            {
                var drained = _ops.DrainedHosts.Count;
                Reply(caller, new QueryFailed(query.QueryId, drained == 0 ? "no GPU hosts are registered" : $"no GPU hosts available ({drained} drained)", null));
                continue;
            }
            var planned = QueryRun.HostsFor(query.Mode, hosts);
            var need = prompt is null ? null : KvAdmission.Estimate(query, prompt, planned, _settings);
            if (need is not null && KvAdmission.NeverFits(need, planned) is { } tooLarge) // the hosts changed while it waited
            {
                Reply(caller, new QueryFailed(query.QueryId, tooLarge, null));
                ApbMetrics.QueryRefused("kv-memory");
                continue;
            }
            if (need is not null && _kv.WaitsFor(need, planned) is { } waitsFor)
            {
                // First come, first served: later (smaller) queries do not overtake it, so none waits forever.
                if (waitsFor != waitedFor) _log.Info("query {0} waits for {1}", query.QueryId, waitsFor);
                _queue.AddFirst(first.Value with { WaitingFor = waitsFor });
                break;
            }
            if (need is not null) _kv.Admit(query.QueryId, need);
            var ring = QueryRun.NeedsNcclRing(planned) ? _rings.Find(planned) : null;
            var times = new QueryRun.RouterTimes(_startedAt, queuedAt);
            var run = Context.ActorOf(QueryRun.Props(query, caller, hosts, _settings, Stopwatch.GetElapsedTime(queuedAt).TotalMilliseconds, ring,
                mayReplan: !replanned, prompt, times), $"query-{++_runs}");
            Context.Watch(run);
            _running[query.QueryId] = run;
        }
        ApbMetrics.SetQueue(_queue.Count, _running.Count);
    }

    /// <summary>Tells the caller and records it (list, tracers, metrics).</summary>
    private void Reply(IActorRef caller, IQueryMessage message)
    {
        caller.Tell(message);
        _ops.Observe(message);
    }

    /// <summary>
    /// Bytes the serializer could not decode (already logged where they arrived): tell the sender why rather than let
    /// it wait for its idle timeout. Only a damaged submission carries its query id back: a damaged cancel or status
    /// request must not end a query that is still running.
    /// </summary>
    private void OnMalformed(MalformedMessage m)
    {
        if (Sender.IsNobody()) return;
        var queryId = m.Manifest == ApbSerializer.ManifestOf<SubmitQuery>() ? m.QueryId : "";
        Sender.Tell(new QueryFailed(queryId, $"the router could not decode a '{m.Manifest}' message ({m.Length} bytes): {m.Reason}", null));
    }

    private void OnCancel(CancelQuery cancel)
    {
        if (_running.TryGetValue(cancel.QueryId, out var run))
        {
            run.Forward(cancel);
            return;
        }
        var waiting = _queue.FirstOrDefault(w => w.Query.QueryId == cancel.QueryId);
        if (waiting is not null)
        {
            _queue.Remove(waiting);
            Reply(waiting.Caller, new QueryCancelled(cancel.QueryId));
            if (waiting.Caller.Equals(Sender)) return;
        }
        Sender.Tell(new QueryCancelled(cancel.QueryId)); // unknown or finished: cancelling is idempotent
    }

    private void OnTerminated(Terminated t)
    {
        var ended = _running.FirstOrDefault(kv => kv.Value.Equals(t.ActorRef)).Key;
        if (ended is not null)
        {
            _running.Remove(ended);
            _kv.Release(ended);
            StartWaiting();
            return;
        }
        Remove(_hosts.RemoveByActor(t.ActorRef), "its actor terminated");
    }

    /// <summary>Drained hosts show as Draining (unless unreachable, which matters more).</summary>
    private ClusterStatus Status() => new(_cluster.SelfAddress.ToString(),
        _hosts.Snapshot().Select(h => _ops.IsDrained(h.HostId) && h.State != HostState.Unreachable ? h with { State = HostState.Draining } : h).ToList(),
        _queue.Count, _running.Count);
}
