using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using ApbCluster.Contracts;
using ApbCluster.Runtime.Engine;

namespace ApbCluster.Runtime.Actors;

/// <summary>
/// One GPU (or one virtual CPU host). Registers with the router through the singleton proxy
/// every RegisterInterval: that keeps the router's memory/KV figures fresh and re-registers
/// after a singleton hand-over without any hand-over detection. Owns its engine.
/// Answers GetClusterStatus with itself alone (used by `gpu list --local`).
/// </summary>
public sealed class GpuHost : ReceiveActor, IWithTimers
{
    private sealed class RegisterTick
    {
        public static readonly RegisterTick Instance = new();
    }

    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly string _hostId;
    private readonly IShardEngine _engine;
    private readonly IActorRef _router;
    private readonly TimeSpan _registerInterval;
    private IActorRef? _registeredWith;

    public GpuHost(string hostId, IShardEngine engine, IActorRef routerProxy, TimeSpan registerInterval)
    {
        _hostId = hostId;
        _engine = engine;
        _router = routerProxy;
        _registerInterval = registerInterval;

        Receive<RegisterTick>(_ => _router.Tell(Registration()));
        Receive<HostRegistered>(OnRegistered);
        Receive<GetClusterStatus>(_ => Sender.Tell(new ClusterStatus("", [LocalStatus()], 0, 0)));
    }

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(string hostId, IShardEngine engine, IActorRef routerProxy, TimeSpan registerInterval) =>
        Akka.Actor.Props.Create(() => new GpuHost(hostId, engine, routerProxy, registerInterval));

    protected override void PreStart() =>
        Timers.StartPeriodicTimer("register", RegisterTick.Instance, TimeSpan.Zero, _registerInterval);

    protected override void PostStop() => _engine.Dispose();

    private void OnRegistered(HostRegistered ack)
    {
        if (ack.Router.Equals(_registeredWith)) return;
        _registeredWith = ack.Router;
        _log.Info("host {0} registered with router {1}", _hostId, ack.Router.Path);
    }

    private RegisterHost Registration()
    {
        var memory = _engine.Memory();
        return new RegisterHost(_hostId, Self, _engine.Device, memory.UsedBytes, memory.TotalBytes, _engine.ModelName, HostState.Ready, _engine.KvBytes);
    }

    private HostStatus LocalStatus()
    {
        var memory = _engine.Memory();
        return new HostStatus(_hostId, Cluster.Get(Context.System).SelfAddress.ToString(), _engine.Device, memory.UsedBytes,
            memory.TotalBytes, _engine.ModelName, _registeredWith is null ? HostState.Starting : HostState.Ready, _engine.KvBytes);
    }
}
