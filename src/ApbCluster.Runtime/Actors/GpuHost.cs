using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using ApbCluster.Contracts;
using ApbCluster.Engine.DataPlane;
using ApbCluster.Engine;
using ApbCluster.Runtime.Hosting;
using ApbCluster.Runtime.Metrics;
using ApbCluster.Runtime.Security;

namespace ApbCluster.Runtime.Actors;

/// <summary>
/// One GPU (or one virtual CPU host). Registers with the router through the singleton proxy every
/// RegisterInterval (keeps figures fresh and re-registers after a singleton hand-over). Runs up to
/// <c>maxQueries</c> query ranks at once, each a <see cref="ShardRun"/> on its own thread with its own data plane
/// and KV shard; it reports Busy only when full, and a RunShard beyond the bound waits in the stash. NCCL ranks run
/// one at a time: the warm ring is one communicator per host, and two queries' collectives on one communicator
/// would interleave differently on different hosts (the router holds such queries back too). Its own failures
/// become ShardFailed for the coordinator: the actor stays up, the engine has freed that query's KV, the others go
/// on. Cancellation, or the coordinator's death (router lost), aborts the run. On GPUs it keeps the NCCL
/// communicator of its current ring warm across queries (<see cref="RingCommunicators"/>, owned by its
/// <see cref="CollectiveFactory"/>, which outlives actor restarts): it answers the router's <see cref="NcclRingCheck"/>
/// and drops the ring on <see cref="DropNcclRing"/>.
/// It registers with its model fingerprint and, once the router challenged it, a join proof (<see cref="HostCredentials"/>);
/// refused by the router (<see cref="HostRefused"/>), it stops its node.
/// </summary>
public sealed class GpuHost : ReceiveActor, IWithTimers, IWithUnboundedStash
{
    private sealed class RegisterTick
    {
        public static readonly RegisterTick Instance = new();
    }

    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly string _hostId;
    private readonly IShardEngine _engine;
    private readonly CollectiveFactory _collectives;
    private readonly IActorRef _router;
    private readonly TimeSpan _registerInterval;
    private readonly int _maxQueries;
    private readonly HostCredentials _credentials;
    private IActorRef? _registeredWith;
    private readonly Dictionary<string, ShardRun> _running = new();

    /// <summary>Queries cancelled while not running here (they may still wait in the stash), most recent last; bounded,
    /// since most are cancels of queries that already ended.</summary>
    private readonly LinkedList<string> _cancelledWaiting = new();

    /// <param name="credentials">The model fingerprint and join secret it registers with; null: none (in-process use).</param>
    public GpuHost(string hostId, IShardEngine engine, CollectiveFactory collectives, IActorRef routerProxy, TimeSpan registerInterval,
        int maxQueries = 1, HostCredentials? credentials = null)
    {
        if (maxQueries < 1) throw new ArgumentOutOfRangeException(nameof(maxQueries), maxQueries, "a host runs at least one query");
        _maxQueries = maxQueries;
        _hostId = hostId;
        _engine = engine;
        _collectives = collectives;
        _router = routerProxy;
        _registerInterval = registerInterval;
        _credentials = credentials ?? new HostCredentials(null, "");

        Receive<RegisterTick>(_ => _router.Tell(Registration()));
        Receive<HostRegistered>(OnRegistered);
        Receive<JoinChallenge>(OnChallenge);
        Receive<HostRefused>(OnRefused);
        Receive<GetClusterStatus>(_ => Sender.Tell(new ClusterStatus("", [LocalStatus()], 0, 0)));
        Receive<RunShard>(OnRunShard);
        Receive<NcclIdRequest>(OnNcclIdRequest);
        Receive<NcclRingCheck>(c => Sender.Tell(new NcclRingStatus(c.QueryId, _hostId, c.RingId, _collectives.Rings.IsReady(c.RingId))));
        Receive<DropNcclRing>(OnDropRing);
        Receive<CancelQuery>(c => AbortIf(c.QueryId, "cancelled by the router"));
        Receive<Terminated>(t => AbortIfCoordinator(t.ActorRef));
        Receive<ShardRun.Ended>(OnEnded);
        // A damaged message (already logged by the serializer): end its query now rather than at the router's deadline.
        Receive<MalformedMessage>(m =>
        {
            if (m.QueryId != "" && !Sender.IsNobody())
                Sender.Tell(new ShardFailed(m.QueryId, _hostId, $"host {_hostId} could not decode a '{m.Manifest}' message ({m.Length} bytes): {m.Reason}", null, false));
        });
    }

    public ITimerScheduler Timers { get; set; } = null!;

    public IStash Stash { get; set; } = null!;

    public static Props Props(string hostId, IShardEngine engine, CollectiveFactory collectives, IActorRef routerProxy, TimeSpan registerInterval,
        int maxQueries = 1, HostCredentials? credentials = null) =>
        Akka.Actor.Props.Create(() => new GpuHost(hostId, engine, collectives, routerProxy, registerInterval, maxQueries, credentials));

    protected override void PreStart() =>
        Timers.StartPeriodicTimer("register", RegisterTick.Instance, TimeSpan.Zero, _registerInterval);

    /// <summary>A restart keeps the engine (and its loaded model); only a real stop disposes it.</summary>
    protected override void PreRestart(Exception reason, object message)
    {
        foreach (var run in _running.Values) run.Abort();
        _log.Error(reason, "host {0} restarting after an actor error; the engine and model are kept", _hostId);
    }

    protected override void PostStop()
    {
        foreach (var run in _running.Values) run.Abort();
        _collectives.Dispose();
        _engine.Dispose();
    }

    private void OnDropRing(DropNcclRing drop)
    {
        if (_collectives.Rings.CurrentRing == drop.RingId)
            _log.Info("host {0}: dropping NCCL ring {1}: {2}", _hostId, drop.RingId, drop.Reason);
        _collectives.Rings.Drop(drop.RingId, drop.Reason); // also remembered, in case a join for it is still in progress
    }

    private void OnRegistered(HostRegistered ack)
    {
        if (ack.Router.Equals(_registeredWith)) return;
        _registeredWith = ack.Router;
        _log.Info("host {0} registered with router {1}", _hostId, ack.Router.Path);
    }

    /// <summary>The router wants the join proof over its nonce: register again at once with it.</summary>
    private void OnChallenge(JoinChallenge challenge)
    {
        if (challenge.HostId != _hostId) return;
        _credentials.Challenged(challenge.Nonce);
        _router.Tell(Registration());
    }

    /// <summary>
    /// Refused for a wrong or missing join secret or another model: nothing this node does will change the router's
    /// mind, so it stops (exit 4) with the reason as its last words instead of lingering unplanned.
    /// </summary>
    private void OnRefused(HostRefused refused)
    {
        if (refused.HostId != _hostId) return;
        _log.Error("the router refused this host ({0}): {1}; stopping this node", refused.Reason, refused.Message);
        _ = CoordinatedShutdown.Get(Context.System).Run(new JoinRefusedReason(refused.Message));
    }

    private void OnRunShard(RunShard work)
    {
        if (_running.ContainsKey(work.QueryId)) return; // duplicate delivery
        if (_cancelledWaiting.Remove(work.QueryId)) return; // cancelled while it waited in the stash
        if (_running.Count >= _maxQueries || (CollectiveFactory.UsesNccl(work.Ring) && _running.Values.Any(r => r.UsesNccl)))
        {
            Stash.Stash(); // full (or still freeing a cancelled query): runs when one ends
            return;
        }
        var ring = work.Ring;
        if (ring.Rank < 0 || ring.Rank >= ring.WorldSize || ring.DataEndpoints.Count != ring.WorldSize || ring.HostIds.Count != ring.WorldSize)
        {
            work.Coordinator.Tell(new ShardFailed(work.QueryId, _hostId, $"host {_hostId}: malformed RunShard (rank {ring.Rank} of {ring.WorldSize})", _hostId, false));
            return;
        }
        Context.Watch(work.Coordinator);
        _running[work.QueryId] = ShardRun.Start(work, _hostId, _engine, _collectives, Self);
        _log.Info("host {0} runs query {1} as rank {2} of {3} ({4} of at most {5} running)", _hostId, work.QueryId, ring.Rank, ring.WorldSize,
            _running.Count, _maxQueries);
        _router.Tell(Registration()); // its figures (and Busy when full), at once
    }

    private void OnNcclIdRequest(NcclIdRequest request)
    {
        try
        {
            Sender.Tell(new NcclIdReply(request.QueryId, CollectiveFactory.NewNcclId(), null));
        }
        catch (Exception e)
        {
            Sender.Tell(new NcclIdReply(request.QueryId, null, $"host {_hostId} cannot create an NCCL id: {e.Message}"));
        }
    }

    private void OnEnded(ShardRun.Ended ended)
    {
        if (!_running.Remove(ended.QueryId, out var run)) return;
        Context.Unwatch(run.Coordinator);
        if (ended.Outcome is { } o)
            run.Coordinator.Tell(new ShardFinished(ended.QueryId, _hostId, run.Rank, o.PrefillMs, o.TotalMs, o.GeneratedTokens));
        else if (!ended.Aborted)
        {
            var failure = run.Failure(ended.Error!);
            _log.Warning("host {0}: query {1} failed: {2}", _hostId, ended.QueryId, failure.Reason);
            if (failure.DataPlane && run.UsesNccl) ApbMetrics.NcclAbort(_hostId);
            run.Coordinator.Tell(failure);
        }
        else
        {
            if (run.UsesNccl) ApbMetrics.NcclAbort(_hostId); // Abort disposed (aborted) the communicator
            _log.Info("host {0}: query {1} aborted; KV freed", _hostId, ended.QueryId);
        }
        Stash.UnstashAll();
        _router.Tell(Registration());
    }

    private void AbortIf(string queryId, string why)
    {
        if (!_running.TryGetValue(queryId, out var run))
        {
            if (!_cancelledWaiting.Contains(queryId)) _cancelledWaiting.AddLast(queryId);
            if (_cancelledWaiting.Count > 256) _cancelledWaiting.RemoveFirst();
            return;
        }
        if (run.Aborted) return;
        _log.Info("host {0}: aborting query {1}: {2}", _hostId, queryId, why);
        run.Abort();
    }

    private void AbortIfCoordinator(IActorRef dead)
    {
        foreach (var run in _running.Values.Where(r => r.Coordinator.Equals(dead)).ToList())
            AbortIf(run.QueryId, "its coordinator (the router) is gone");
    }

    /// <summary>Busy only when it takes no further query now.</summary>
    private HostState State => _running.Count >= _maxQueries ? HostState.Busy : HostState.Ready;

    private RegisterHost Registration()
    {
        var (memory, host) = (_engine.Memory(), _engine.HostMemory());
        return _credentials.Sign(
            new RegisterHost(_hostId, Self, _engine.Device, memory.UsedBytes, memory.TotalBytes, _engine.ModelName, State, _engine.KvBytes, _collectives.Endpoint)
            {
                HostMemoryUsedBytes = host.UsedBytes, HostMemoryTotalBytes = host.TotalBytes, HostKvBytes = _engine.HostKvBytes,
            },
            ((ExtendedActorSystem)Context.System).Provider.DefaultAddress);
    }

    private HostStatus LocalStatus()
    {
        var (memory, host) = (_engine.Memory(), _engine.HostMemory());
        return new HostStatus(_hostId, Cluster.Get(Context.System).SelfAddress.ToString(), _engine.Device, memory.UsedBytes,
            memory.TotalBytes, _engine.ModelName, _registeredWith is null ? HostState.Starting : State, _engine.KvBytes,
            host.UsedBytes, host.TotalBytes, _engine.HostKvBytes);
    }
}
