using System.Net;
using System.Net.Sockets;
using System.Reflection;
using Akka.Actor;
using Akka.Event;
using System.Text.Json.Nodes;
using ApbCluster.Admin;
using ApbCluster.Client;
using ApbCluster.Contracts;
using ApbCluster.Runtime.Tests.Engine;

namespace ApbCluster.Runtime.Tests.Cluster;

/// <summary>Helpers shared by the multi-process tests: free loopback ports, a node's environment, node output tails.</summary>
public static class ClusterProcesses
{
    public static int[] FreePorts(int count)
    {
        var listeners = Enumerable.Range(0, count).Select(_ => new TcpListener(IPAddress.Loopback, 0)).ToList();
        listeners.ForEach(l => l.Start());
        var ports = listeners.Select(l => ((IPEndPoint)l.LocalEndpoint).Port).ToArray();
        listeners.ForEach(l => l.Stop());
        return ports;
    }

    /// <summary>The join secret every test node proves (a test's stranger gets another one, or none).</summary>
    public const string JoinSecret = "loopback-test-cluster-join-secret";

    /// <summary>An apb-node on 127.0.0.1: cluster address, seed, role, admin port and join secret only (no config file, no model).</summary>
    public static Dictionary<string, string> BaseEnvironment(int port, int adminPort, string role, string seed) => new()
    {
        ["CLUSTER_IP"] = "127.0.0.1",
        ["CLUSTER_PORT"] = port.ToString(),
        ["CLUSTER_SEEDS"] = seed,
        ["CLUSTER_ROLES"] = role,
        ["APB_ADMIN_PORT"] = adminPort.ToString(),
        ["APB_JOIN_SECRET"] = JoinSecret,
    };

    /// <summary>An apb-node on 127.0.0.1 with the random tiny model (routers tokenize with it, hosts run it).</summary>
    public static Dictionary<string, string> NodeEnvironment(int port, int adminPort, string role, string seed, string opsFile)
    {
        var env = BaseEnvironment(port, adminPort, role, seed);
        env["APB_CONFIG"] = opsFile;
        env["APB_MODEL"] = InProcessReference.Model;
        env["APB_COLLECTIVE_TIMEOUT"] = "10";
        return env;
    }

    /// <summary>`gpu list` as JSON nodes; empty when the command fails (e.g. the router has no hosts yet).</summary>
    public static async Task<List<JsonNode>> GpuHosts(AdminClient admin, CancellationToken ct)
    {
        var response = await admin.RunAsync("gpu list", [], ct);
        return response.ExitCode == AdminExitCodes.Ok ? response.Json!.AsArray().Select(h => h!).ToList() : [];
    }

    public static string Outputs(IEnumerable<NodeProcess> nodes, int chars = 4000) =>
        string.Join("\n", nodes.Select(n => $"----- {n.Name} -----\n{Tail(n.Output, chars)}"));

    private static string Tail(string text, int chars) => text.Length <= chars ? text : text[^chars..];
}

/// <summary>
/// apb-node processes a test starts itself (its own roles, ports and environment), with an optional
/// ops config file; failure messages carry the nodes' output tails. Disposing kills them all and deletes the file.
/// </summary>
public sealed class NodeGroup : IDisposable
{
    private readonly List<NodeProcess> _nodes = [];

    /// <param name="opsConfig">HOCON written to <see cref="OpsFile"/> (APB_CONFIG); null: no file.</param>
    public NodeGroup(string? opsConfig = null)
    {
        if (opsConfig is null) return;
        OpsFile = Path.GetTempFileName();
        File.WriteAllText(OpsFile, opsConfig);
    }

    public string? OpsFile { get; }

    public IReadOnlyList<NodeProcess> Nodes => _nodes;

    /// <summary>Starts a node with <paramref name="env"/>, <paramref name="extra"/> set over it.</summary>
    public NodeProcess Start(string name, Dictionary<string, string> env, params (string Key, string Value)[] extra)
    {
        foreach (var (key, value) in extra) env[key] = value;
        var node = new NodeProcess(name, env);
        _nodes.Add(node);
        return node;
    }

    public string Outputs(int chars = 4000) => ClusterProcesses.Outputs(_nodes, chars);

    /// <summary>Polls until <paramref name="condition"/> holds; fails the test with the nodes' outputs after <paramref name="bound"/>,
    /// or at once when the condition throws (say, a node closed its admin connection because it stopped).</summary>
    public async Task Eventually(string what, TimeSpan bound, Func<Task<bool>> condition, TimeSpan? poll = null)
    {
        var deadline = DateTime.UtcNow + bound;
        while (DateTime.UtcNow < deadline)
        {
            bool holds;
            try
            {
                holds = await condition();
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                Assert.Fail($"{what}: {e.GetType().Name}: {e.Message}\n{Outputs()}");
                throw; // not reached
            }
            if (holds) return;
            await Task.Delay(poll ?? TimeSpan.FromMilliseconds(250));
        }
        Assert.Fail($"not within {bound.TotalSeconds}s: {what}\n{Outputs()}");
    }

    /// <summary>Connects to a node's admin endpoint, retrying until it opens or <paramref name="bound"/> passes.</summary>
    public async Task<AdminClient> ConnectAdminAsync(string endpoint, TimeSpan bound, CancellationToken ct, TimeSpan? connectTimeout = null)
    {
        var deadline = DateTime.UtcNow + bound;
        while (true)
        {
            try
            {
                return await AdminClient.ConnectAsync(endpoint, timeout: connectTimeout, ct: ct);
            }
            catch (AdminConnectionException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(250, ct);
            }
            catch (AdminConnectionException e)
            {
                throw new TimeoutException($"admin endpoint {endpoint} never opened\n{Outputs()}", e);
            }
        }
    }

    public void Dispose()
    {
        foreach (var node in _nodes) node.Dispose();
        if (OpsFile is not null) File.Delete(OpsFile);
    }
}

/// <summary>
/// One router node and N gpu-host node processes on loopback (random:tiny:7, no layer delay), ready once
/// the router reports every host. Disposing kills them all.
/// </summary>
public sealed class LoopbackCluster : IDisposable
{
    private readonly NodeGroup _group = new("""
        akka.cluster.split-brain-resolver.stable-after = 3s
        apb.gpu-host.register-interval = 1s
        apb.router.blame-grace = 500ms
        """);

    private LoopbackCluster(int routerPort)
    {
        RouterContact = $"127.0.0.1:{routerPort}";
    }

    /// <summary>The router's CLUSTER_IP:CLUSTER_PORT, a ClusterQueryClient contact.</summary>
    public string RouterContact { get; }

    public NodeProcess Router => _group.Nodes[0];

    public IReadOnlyList<string> HostIds { get; private set; } = [];

    /// <param name="routerEnv">extra variables for the router (e.g. APB_ROUTER_QUEUE).</param>
    /// <param name="modelDir">a model folder for every node (APB_MODEL_DIR) instead of the random tiny model.</param>
    /// <param name="hostEnv">extra variables for every gpu-host node (e.g. APB_MAX_QUERIES).</param>
    public static async Task<LoopbackCluster> StartAsync(int hostNodes, IReadOnlyDictionary<string, string>? routerEnv = null,
        TimeSpan? readyBound = null, CancellationToken ct = default, string? modelDir = null, IReadOnlyDictionary<string, string>? hostEnv = null)
    {
        (string, string)[] model = modelDir is null ? [] : [("APB_MODEL", ""), ("APB_MODEL_DIR", modelDir)];
        var ports = ClusterProcesses.FreePorts(2 + 2 * hostNodes);
        var cluster = new LoopbackCluster(ports[0]);
        try
        {
            var seed = $"akka.tcp://apb@127.0.0.1:{ports[0]}";
            var opsFile = cluster._group.OpsFile!;
            cluster._group.Start("router", ClusterProcesses.NodeEnvironment(ports[0], ports[1], "router", seed, opsFile),
                [.. (routerEnv ?? new Dictionary<string, string>()).Select(kv => (kv.Key, kv.Value)), .. model]);
            for (int i = 0; i < hostNodes; i++)
                cluster._group.Start($"host-{i}", ClusterProcesses.NodeEnvironment(ports[2 + 2 * i], ports[3 + 2 * i], "gpu-host", seed, opsFile),
                    [.. (hostEnv ?? new Dictionary<string, string>()).Select(kv => (kv.Key, kv.Value)), .. model]);

            await using var client = cluster.Connect();
            var deadline = DateTime.UtcNow + (readyBound ?? TimeSpan.FromSeconds(45));
            while (true)
            {
                ct.ThrowIfCancellationRequested();
                try
                {
                    var status = await client.StatusAsync(TimeSpan.FromSeconds(2));
                    if (status.Hosts.Count == hostNodes)
                    {
                        cluster.HostIds = status.Hosts.Select(h => h.HostId).ToList();
                        return cluster;
                    }
                }
                catch (Exception) when (DateTime.UtcNow < deadline)
                {
                    // receptionist or singleton not up yet
                }
                if (DateTime.UtcNow >= deadline)
                    throw new TimeoutException($"the router did not report {hostNodes} host(s) within the bound\n{cluster.Outputs()}");
                await Task.Delay(250, ct);
            }
        }
        catch
        {
            cluster.Dispose();
            throw;
        }
    }

    public ClusterQueryClient Connect(TimeSpan? idleTimeout = null) =>
        ClusterQueryClient.Connect([RouterContact], new ClusterQueryClientOptions { IdleTimeout = idleTimeout ?? TimeSpan.FromSeconds(30) });

    /// <summary>Every node still running (none crashed or exited).</summary>
    public bool AllRunning => _group.Nodes.All(n => !n.HasExited);

    /// <summary>The gpu-host nodes' whole outputs.</summary>
    public IEnumerable<string> HostOutputs() => _group.Nodes.Skip(1).Select(n => n.Output);

    public string Outputs(int chars = 4000) => _group.Outputs(chars);

    public void Dispose() => _group.Dispose();
}

/// <summary>
/// Counts query messages that reach a ClusterQueryClient after their listener ended (dead letters): a
/// duplicated terminal event, or any event after it, shows up here because the client itself drops them.
/// </summary>
internal sealed class LateEventCounter : ReceiveActor
{
    private readonly List<IQueryMessage> _late;

    public LateEventCounter(List<IQueryMessage> late)
    {
        _late = late;
        Receive<DeadLetter>(d =>
        {
            if (d.Message is IQueryMessage m) lock (_late) _late.Add(m);
        });
    }
}

public static class LateEvents
{
    /// <summary>Subscribes to the client's ActorSystem (private field, read by reflection: test-only).</summary>
    public static List<IQueryMessage> Attach(ClusterQueryClient client)
    {
        var system = (ActorSystem)typeof(ClusterQueryClient).GetField("_system", BindingFlags.NonPublic | BindingFlags.Instance)!.GetValue(client)!;
        var late = new List<IQueryMessage>();
        var counter = system.ActorOf(Props.Create(() => new LateEventCounter(late)));
        system.EventStream.Subscribe(counter, typeof(DeadLetter));
        return late;
    }
}

/// <summary>
/// Multi-process cluster tests run one at a time: FreePorts releases its ports before the nodes bind them,
/// so two clusters booting at once can collide ("Address already in use"), and 2 cores are shared anyway.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class LoopbackClusterCollection
{
    public const string Name = "loopback cluster processes";
}
