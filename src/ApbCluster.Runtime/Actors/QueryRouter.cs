using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using ApbCluster.Contracts;

namespace ApbCluster.Runtime.Actors;

/// <summary>
/// The router (a cluster singleton on role "router"). For now it keeps the host registry and
/// answers status; planning and query execution arrive with the model engine. Its state is
/// rebuilt after a hand-over because hosts re-register periodically.
/// </summary>
public sealed class QueryRouter : ReceiveActor
{
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Cluster _cluster = Cluster.Get(Context.System);
    private readonly HostRegistry _hosts = new();

    public QueryRouter()
    {
        Receive<RegisterHost>(OnRegister);
        Receive<GetClusterStatus>(_ => Sender.Tell(Status()));
        Receive<SubmitQuery>(OnSubmit);
        Receive<CancelQuery>(c => Sender.Tell(new QueryCancelled(c.QueryId)));
        Receive<Terminated>(t => Remove(_hosts.RemoveByActor(t.ActorRef), "its actor terminated"));
        Receive<ClusterEvent.MemberRemoved>(m => Remove(_hosts.RemoveByAddress(m.Member.Address), $"member {m.Member.Address} was removed"));
        Receive<ClusterEvent.UnreachableMember>(m => _hosts.MarkReachable(m.Member.Address, false));
        Receive<ClusterEvent.ReachableMember>(m => _hosts.MarkReachable(m.Member.Address, true));
        Receive<ClusterEvent.IMemberEvent>(_ => { });
    }

    public static Props Props() => Akka.Actor.Props.Create(() => new QueryRouter());

    protected override void PreStart() =>
        _cluster.Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents,
            typeof(ClusterEvent.IMemberEvent), typeof(ClusterEvent.IReachabilityEvent));

    protected override void PostStop() => _cluster.Unsubscribe(Self);

    private void OnRegister(RegisterHost registration)
    {
        var address = registration.Host.Path.Address.HasGlobalScope ? registration.Host.Path.Address : _cluster.SelfAddress;
        if (_hosts.Upsert(registration, address))
        {
            Context.Watch(registration.Host);
            _log.Info("host {0} registered from {1} ({2}); {3} host(s) known", registration.HostId, address, registration.Device, _hosts.Count);
        }
        Sender.Tell(new HostRegistered(registration.HostId, Self));
    }

    private void Remove(IReadOnlyList<string> removed, string why)
    {
        foreach (var hostId in removed)
            _log.Warning("host {0} removed: {1}; {2} host(s) left", hostId, why, _hosts.Count);
    }

    private void OnSubmit(SubmitQuery query)
    {
        // Placeholder until the engine lands: refuse clearly rather than hang the caller.
        var reason = _hosts.Count == 0
            ? "no GPU hosts are registered"
            : "query execution is not available yet: no model engine is plugged into the hosts";
        Sender.Tell(new QueryFailed(query.QueryId, reason, null));
    }

    private ClusterStatus Status() => new(_cluster.SelfAddress.ToString(), _hosts.Snapshot(), QueueDepth: 0, InFlight: 0);
}
