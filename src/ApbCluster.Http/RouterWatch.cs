using Akka.Actor;
using Akka.Cluster;
using Akka.Remote;

namespace ApbCluster.Http;

/// <summary>
/// The front door's view of the router singleton: it lives on the oldest Up member with role "router"
/// (where ClusterSingletonManager runs it), and is available while that node is reachable and its
/// remoting connection open. A killed router's connection closes at once, seconds before the failure
/// detector notices, and the singleton proxy keeps sending to it until the node is removed: without this
/// watch a request in flight, or one sent in that window, would wait for its whole request timeout.
/// New requests wait here (<see cref="Await"/>) for a bounded time; requests in flight follow their
/// router's node (<see cref="Follow"/>) and hear <see cref="Lost"/> when it goes.
/// </summary>
public sealed class RouterWatch : ReceiveActor, IWithTimers
{
    /// <summary>Answered with <see cref="Ready"/> once the singleton's node is available, or <see cref="Unavailable"/> after <paramref name="Within"/>.</summary>
    public sealed record Await(TimeSpan Within) : INoSerializationVerificationNeeded;

    public sealed record Ready(Address Router) : INoSerializationVerificationNeeded;

    public sealed record Unavailable(string Reason) : INoSerializationVerificationNeeded;

    /// <summary>The sender runs a query on the router at <paramref name="Router"/>; tell it when that node is lost.</summary>
    public sealed record Follow(Address Router) : INoSerializationVerificationNeeded;

    public sealed record Lost(Address Router, string Reason) : INoSerializationVerificationNeeded;

    private sealed record Expired(long Id);

    private readonly Cluster _cluster = Cluster.Get(Context.System);
    private readonly List<Member> _routers = [];
    private readonly HashSet<Address> _unreachable = [];
    private readonly HashSet<Address> _disconnected = []; // connection closed, not opened again since
    private readonly Dictionary<IActorRef, Address> _followers = new();
    private readonly Dictionary<long, IActorRef> _waiters = new();
    private long _nextWaiter;

    public RouterWatch()
    {
        Receive<Await>(OnAwait);
        Receive<Expired>(e =>
        {
            if (_waiters.Remove(e.Id, out var waiter))
                waiter.Tell(new Unavailable($"no router singleton was reachable within the wait ({Why()})"));
        });
        Receive<Follow>(OnFollow);
        Receive<Terminated>(t => _followers.Remove(t.ActorRef));
        Receive<ClusterEvent.CurrentClusterState>(s =>
        {
            foreach (var m in s.Members) Track(m);
            foreach (var m in s.Unreachable) NotAvailable(_unreachable, m.Address);
            Release();
        });
        Receive<ClusterEvent.MemberUp>(m => { Track(m.Member); Release(); });
        Receive<ClusterEvent.MemberLeft>(m => Leave(m.Member, "it is leaving the cluster"));
        Receive<ClusterEvent.MemberExited>(m => Leave(m.Member, "it left the cluster"));
        Receive<ClusterEvent.MemberRemoved>(m => Leave(m.Member, "it was removed from the cluster"));
        Receive<ClusterEvent.UnreachableMember>(m => NotAvailable(_unreachable, m.Member.Address));
        Receive<ClusterEvent.ReachableMember>(m => Available(_unreachable, m.Member.Address));
        Receive<DisassociatedEvent>(e => NotAvailable(_disconnected, e.RemoteAddress));
        Receive<AssociatedEvent>(e => Available(_disconnected, e.RemoteAddress));
        Receive<ClusterEvent.IClusterDomainEvent>(_ => { });
    }

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props() => Akka.Actor.Props.Create(() => new RouterWatch());

    protected override void PreStart()
    {
        _cluster.Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsSnapshot,
            typeof(ClusterEvent.IMemberEvent), typeof(ClusterEvent.IReachabilityEvent));
        Context.System.EventStream.Subscribe(Self, typeof(DisassociatedEvent));
        Context.System.EventStream.Subscribe(Self, typeof(AssociatedEvent));
    }

    protected override void PostStop()
    {
        _cluster.Unsubscribe(Self);
        Context.System.EventStream.Unsubscribe(Self);
    }

    /// <summary>The singleton's node: the oldest Up router.</summary>
    private Address? Singleton =>
        _routers.Count == 0 ? null : _routers.Aggregate((a, b) => b.IsOlderThan(a) ? b : a).Address;

    private bool IsAvailable(Address node) => node.Equals(_cluster.SelfAddress) || (!_unreachable.Contains(node) && !_disconnected.Contains(node));

    /// <summary>Why <paramref name="node"/> is not available; null when it is.</summary>
    private string? Down(Address node) =>
        IsAvailable(node) ? null : _disconnected.Contains(node) ? "its connection closed (process stopped or killed?)" : "it is unreachable";

    private string Why() => Singleton is not { } s ? "no router node is Up" : $"router node {s}: {Down(s) ?? "available"}";

    private void OnAwait(Await wait)
    {
        if (Singleton is { } s && IsAvailable(s))
        {
            Sender.Tell(new Ready(s));
            return;
        }
        var id = ++_nextWaiter;
        _waiters[id] = Sender;
        Timers.StartSingleTimer(id, new Expired(id), wait.Within);
    }

    private void OnFollow(Follow follow)
    {
        var node = follow.Router.HasGlobalScope ? follow.Router : _cluster.SelfAddress;
        _followers[Sender] = node;
        Context.Watch(Sender);
        if (node.Equals(_cluster.SelfAddress)) return;
        if (Down(node) is { } why) Sender.Tell(new Lost(node, why));
        else if (!_routers.Any(r => r.Address.Equals(node))) Sender.Tell(new Lost(node, "it is no longer a router member"));
    }

    private void Track(Member m)
    {
        if (m.Status != MemberStatus.Up || !m.HasRole("router")) return;
        _routers.RemoveAll(r => r.Address.Equals(m.Address));
        _routers.Add(m);
        _unreachable.Remove(m.Address); // a new incarnation on the same address
        _disconnected.Remove(m.Address);
    }

    private void Leave(Member m, string why)
    {
        if (_routers.RemoveAll(r => r.UniqueAddress.Equals(m.UniqueAddress)) > 0) Tell(m.Address, why);
        Release(); // the next oldest router takes the singleton over
    }

    private void NotAvailable(HashSet<Address> set, Address node)
    {
        set.Add(node);
        Tell(node, Down(node)!);
    }

    private void Available(HashSet<Address> set, Address node)
    {
        set.Remove(node);
        Release();
    }

    private void Tell(Address node, string why)
    {
        foreach (var (follower, router) in _followers.Where(f => f.Value.Equals(node)).ToList())
        {
            follower.Tell(new Lost(node, why));
            _followers.Remove(follower);
            Context.Unwatch(follower);
        }
    }

    private void Release()
    {
        if (_waiters.Count == 0 || Singleton is not { } s || !IsAvailable(s)) return;
        foreach (var (id, waiter) in _waiters)
        {
            Timers.Cancel(id);
            waiter.Tell(new Ready(s));
        }
        _waiters.Clear();
    }
}
