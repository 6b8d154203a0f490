using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using ApbCluster.Admin;

namespace ApbCluster.Runtime.Tests.Cluster;

/// <summary>
/// The real thing: a router and two gpu-host apb-node processes on loopback, driven only
/// through the admin endpoint. One host is SIGKILLed; the split-brain resolver (keep-majority,
/// stable-after 3s from a config file) must down and remove it within the bound.
/// </summary>
public sealed class MultiProcessClusterTests : IDisposable
{
    private static readonly TimeSpan JoinBound = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan DownBound = TimeSpan.FromSeconds(30);

    private readonly List<NodeProcess> _nodes = [];
    private readonly string _opsFile = Path.GetTempFileName();

    [Fact]
    public async Task Router_and_two_hosts_join_and_a_killed_host_is_downed()
    {
        var ct = TestContext.Current.CancellationToken;
        File.WriteAllText(_opsFile, """
            akka.cluster.split-brain-resolver.stable-after = 3s
            akka.cluster.failure-detector.acceptable-heartbeat-pause = 3s
            apb.gpu-host.register-interval = 1s
            """);
        var ports = FreePorts(6);
        var routerAddress = $"akka.tcp://apb@127.0.0.1:{ports[0]}";
        var routerAdmin = $"127.0.0.1:{ports[1]}";
        Start("router", ports[0], ports[1], "router", routerAddress);
        Start("host-a", ports[2], ports[3], "gpu-host", routerAddress);
        var hostB = Start("host-b", ports[4], ports[5], "gpu-host", routerAddress);
        var hostBAddress = $"akka.tcp://apb@127.0.0.1:{ports[4]}";

        await using var admin = await ConnectWithRetry(routerAdmin, ct);

        await Eventually("3 members Up", JoinBound, async () =>
        {
            var members = await Members(admin, ct);
            return members.Count == 3 && members.All(m => m["status"]!.GetValue<string>() == "Up");
        });
        await Eventually("2 hosts in gpu list", JoinBound, async () => (await GpuHosts(admin, ct)).Count == 2);

        // Shell exit codes against a live node.
        var output = new StringWriter();
        Assert.Equal(AdminExitCodes.Ok, await AdminShell.RunAsync(routerAdmin, ["cluster", "show"], output));
        Assert.Contains(hostBAddress, output.ToString());
        Assert.Equal(AdminExitCodes.Usage, await AdminShell.RunAsync(routerAdmin, ["cluster", "explode"], output));
        Assert.Equal(AdminExitCodes.CommandError, await AdminShell.RunAsync(routerAdmin, ["cluster", "down", "-a", "akka.tcp://apb@127.0.0.1:1"], output));

        hostB.Kill();
        var killedAt = DateTime.UtcNow;
        await Eventually("host-b removed from membership", DownBound, async () =>
            (await Members(admin, ct)).All(m => m["address"]!.GetValue<string>() != hostBAddress));
        await Eventually("host-b gone from gpu list", TimeSpan.FromSeconds(10), async () =>
            (await GpuHosts(admin, ct)).All(h => h["address"]!.GetValue<string>() != hostBAddress));
        var downedAfter = DateTime.UtcNow - killedAt;
        Assert.True(downedAfter < DownBound, $"downing took {downedAfter}");
        Assert.Single(await GpuHosts(admin, ct));
    }

    private NodeProcess Start(string name, int port, int adminPort, string role, string seed)
    {
        var node = new NodeProcess(name, new Dictionary<string, string>
        {
            ["CLUSTER_IP"] = "127.0.0.1",
            ["CLUSTER_PORT"] = port.ToString(),
            ["CLUSTER_SEEDS"] = seed,
            ["CLUSTER_ROLES"] = role,
            ["APB_ADMIN_PORT"] = adminPort.ToString(),
            ["APB_CONFIG"] = _opsFile,
        });
        _nodes.Add(node);
        return node;
    }

    private static async Task<List<JsonNode>> Members(AdminClient admin, CancellationToken ct)
    {
        var response = await admin.RunAsync("cluster show", [], ct);
        Assert.Equal(AdminExitCodes.Ok, response.ExitCode);
        return response.Json!["members"]!.AsArray().Select(m => m!).ToList();
    }

    private static async Task<List<JsonNode>> GpuHosts(AdminClient admin, CancellationToken ct)
    {
        var response = await admin.RunAsync("gpu list", [], ct);
        return response.ExitCode == AdminExitCodes.Ok ? response.Json!.AsArray().Select(h => h!).ToList() : [];
    }

    private async Task<AdminClient> ConnectWithRetry(string endpoint, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow + JoinBound;
        while (true)
        {
            try
            {
                return await AdminClient.ConnectAsync(endpoint, timeout: TimeSpan.FromSeconds(5), ct: ct);
            }
            catch (AdminConnectionException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(250, ct);
            }
            catch (AdminConnectionException e)
            {
                throw new TimeoutException($"router admin endpoint never opened\n{NodeOutputs()}", e);
            }
        }
    }

    private async Task Eventually(string what, TimeSpan bound, Func<Task<bool>> condition)
    {
        var deadline = DateTime.UtcNow + bound;
        while (DateTime.UtcNow < deadline)
        {
            if (await condition()) return;
            await Task.Delay(250);
        }
        Assert.Fail($"not within {bound.TotalSeconds}s: {what}\n{NodeOutputs()}");
    }

    private string NodeOutputs() => string.Join("\n", _nodes.Select(n => $"----- {n.Name} -----\n{Tail(n.Output, 4000)}"));

    private static string Tail(string text, int chars) => text.Length <= chars ? text : text[^chars..];

    private static int[] FreePorts(int count)
    {
        var listeners = Enumerable.Range(0, count).Select(_ => new TcpListener(IPAddress.Loopback, 0)).ToList();
        listeners.ForEach(l => l.Start());
        var ports = listeners.Select(l => ((IPEndPoint)l.LocalEndpoint).Port).ToArray();
        listeners.ForEach(l => l.Stop());
        return ports;
    }

    public void Dispose()
    {
        foreach (var node in _nodes) node.Dispose();
        File.Delete(_opsFile);
    }
}
