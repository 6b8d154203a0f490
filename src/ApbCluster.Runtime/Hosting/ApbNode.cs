using Akka.Actor;
using Akka.Cluster.Tools.Client;
using Akka.Cluster.Tools.Singleton;
using ApbCluster.Client.Logging;
using ApbCluster.Runtime.Actors;
using ApbCluster.Runtime.Admin;
using ApbCluster.Runtime.Config;
using ApbCluster.Engine.DataPlane;
using ApbCluster.Engine;
using ApbCluster.Runtime.Logging;
using ApbCluster.Runtime.Metrics;
using ApbCluster.Runtime.Security;

namespace ApbCluster.Runtime.Hosting;

/// <summary>
/// One cluster node: the ActorSystem, the role-specific actors and the admin endpoint.
/// Seeds are joined by Akka from akka.cluster.seed-nodes.
/// </summary>
public sealed class ApbNode : IAsyncDisposable
{
    public const string RouterManagerName = "query-router";
    public const string RouterProxyName = "query-router-proxy";

    private ApbNode(NodeConfig config, ActorSystem system, IActorRef routerProxy, IReadOnlyList<IActorRef> gpuHosts, AdminServer? admin)
    {
        Config = config;
        System = system;
        RouterProxy = routerProxy;
        GpuHosts = gpuHosts;
        Admin = admin;
    }

    public NodeConfig Config { get; }

    public ActorSystem System { get; }

    /// <summary>Singleton proxy to the QueryRouter; present on every node.</summary>
    public IActorRef RouterProxy { get; }

    public IReadOnlyList<IActorRef> GpuHosts { get; }

    public AdminServer? Admin { get; }

    private int _disposed;

    /// <summary>Prometheus endpoint; null when APB_METRICS_PORT is 0 (the default).</summary>
    public MetricsEndpoint? Metrics { get; private set; }

    public Task WhenTerminated => System.WhenTerminated;

    /// <param name="engineFactory">Engine for virtual host i; by default the configured model
    /// (APB_MODEL / APB_MODEL_DIR) on APB_DEVICE, or the placeholder that refuses queries.</param>
    /// <exception cref="NodeConfigException">No join secret and no apb.cluster.allow-insecure-join.</exception>
    public static ApbNode Start(NodeConfig config, Func<int, IShardEngine>? engineFactory = null)
    {
        var settings = config.Settings;
        config.Join.RequireSecretOrInsecure();
        var model = ModelSpec.Parse(settings.Model, settings.ModelDir);
        var fingerprint = ModelFingerprint.Of(model);
        var system = QuietActorSystem.Create(settings.SystemName, config.Hocon, new SingletonWaitFilter(SingletonWaitPeriod(config.Hocon)));
        try
        {
            system.ActorOf(QuarantineWatch.Props(), "quarantine-watch");
            if (settings.HasRole(NodeRoles.Router))
                system.ActorOf(ClusterSingletonManager.Props(QueryRouter.Props(RouterSettings.From(config.Hocon, model)), PoisonPill.Instance,
                    ClusterSingletonManagerSettings.Create(system).WithRole(NodeRoles.Router)), RouterManagerName);

            var proxy = system.ActorOf(ClusterSingletonProxy.Props($"/user/{RouterManagerName}",
                ClusterSingletonProxySettings.Create(system).WithRole(NodeRoles.Router)), RouterProxyName);

            // Outside services reach the router as "/user/query-router-proxy" via ClusterClient.
            if (settings.HasRole(NodeRoles.Router))
                ClusterClientReceptionist.Get(system).RegisterService(proxy);

            var hosts = new List<IActorRef>();
            if (settings.HasRole(NodeRoles.GpuHost))
            {
                for (var i = 0; i < settings.VirtualHosts; i++)
                {
                    var hostId = $"{settings.PublicHostname}:{settings.Port}/gpu{i}";
                    var engine = engineFactory?.Invoke(i) ?? DefaultEngine(settings, model, i);
                    var listener = new DataPlaneListener(settings.Hostname, settings.PublicHostname, settings.DataPort == 0 ? 0 : settings.DataPort + i);
                    system.RegisterOnTermination(listener.Dispose);
                    var collectives = new CollectiveFactory(listener, engine.Device);
                    var credentials = new HostCredentials(config.Join.Secret, fingerprint);
                    hosts.Add(system.ActorOf(GpuHost.Props(hostId, engine, collectives, proxy, settings.RegisterInterval, settings.MaxQueries, credentials), $"gpu-host-{i}"));
                }
            }

            var admin = settings.AdminPort == 0 ? null : StartAdmin(settings, system, proxy, hosts, config.Ops.ExpectedHosts);
            var node = new ApbNode(config, system, proxy, hosts, admin);
            if (config.Ops.MetricsPort != 0)
                node.Metrics = new MetricsEndpoint(config.Ops.MetricsHost, config.Ops.MetricsPort,
                    settings.HasRole(NodeRoles.Router) ? proxy : null, hosts);
            return node;
        }
        catch
        {
            system.Terminate().Wait(TimeSpan.FromSeconds(10));
            throw;
        }
    }

    private static TimeSpan SingletonWaitPeriod(Akka.Configuration.Config hocon) =>
        hocon.WithFallback(ClusterSingleton.DefaultConfig()).GetTimeSpan("akka.cluster.singleton-proxy.singleton-identification-failure-period");

    private static IShardEngine DefaultEngine(NodeSettings settings, ModelSpec? model, int index)
    {
        if (model is null) return new NoModelEngine();
        var device = settings.Device == "cuda" ? $"cuda:{index}" : settings.Device;
        return new LlamaShardEngine(model, device, settings.TestLayerDelay, settings.KvMemory, settings.PrefillPolicy, settings.BatchDecode,
            settings.HostKvMemory);
    }

    private static AdminServer StartAdmin(NodeSettings settings, ActorSystem system, IActorRef proxy, IReadOnlyList<IActorRef> hosts, int expectedHosts)
    {
        var registry = new AdminCommandRegistry();
        ClusterPalette.Register(registry, system);
        ActorPalette.Register(registry, system);
        LogPalette.Register(registry, system);
        GpuPalette.Register(registry, proxy, hosts);
        OpsPalettes.Register(registry, system, proxy);
        HealthPalette.Register(registry, system, proxy, hosts, settings.HasRole(NodeRoles.Router), expectedHosts);
        return new AdminServer(settings.AdminHost, settings.AdminPort, settings.AdminToken, registry);
    }

    /// <summary>Leave the cluster gracefully (coordinated shutdown); the system terminates at its end.
    /// Endpoints are closed by <see cref="DisposeAsync"/>, once, after that.</summary>
    public Task ShutdownAsync(CoordinatedShutdown.Reason reason) => CoordinatedShutdown.Get(System).Run(reason);

    /// <summary>Why coordinated shutdown ran (null when it has not, or the system was terminated directly).</summary>
    public CoordinatedShutdown.Reason? ShutdownReason => CoordinatedShutdown.Get(System).ShutdownReason;

    /// <summary>Idempotent: a signal handler and the main path may both get here.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        if (Admin is not null) await Admin.DisposeAsync();
        Metrics?.Dispose();
        await System.Terminate().WaitAsync(TimeSpan.FromSeconds(15)).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }
}
