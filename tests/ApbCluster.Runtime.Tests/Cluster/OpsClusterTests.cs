using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using ApbCluster.Admin;

namespace ApbCluster.Runtime.Tests.Cluster;

/// <summary>
/// The operations surface against real apb-node processes on loopback: streaming `cluster tail`
/// sees a host join, `gpu list` shows every (virtual) host, `log tail` streams, `cluster down -a`
/// removes a node, the Prometheus endpoint reports the router's hosts, and the shell's exit codes.
/// Drain and query commands answer at once (the router handles them through RouterOps);
/// QueryOpsClusterTests covers them with real queries.
/// </summary>
public sealed class OpsClusterTests : IDisposable
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(40);
    private readonly List<NodeProcess> _nodes = [];
    private readonly string _opsFile = Path.GetTempFileName();

    [Fact]
    public async Task Admin_streams_gpu_list_down_and_metrics_on_a_real_cluster()
    {
        var ct = TestContext.Current.CancellationToken;
        File.WriteAllText(_opsFile, "apb.gpu-host.register-interval = 1s\nakka.cluster.split-brain-resolver.stable-after = 3s\n");
        var p = FreePorts(7);
        var seed = $"akka.tcp://apb@127.0.0.1:{p[0]}";
        var routerAdmin = $"127.0.0.1:{p[1]}";
        Start("router", p[0], p[1], "router", seed, ("APB_METRICS_PORT", p[6].ToString()));
        Start("host-a", p[2], p[3], "gpu-host", seed);
        await using var admin = await ConnectWithRetry(routerAdmin, ct);
        await Eventually("router and host-a Up", async () => (await UpMembers(admin, ct)) == 2);

        // cluster tail on a second connection, then a second host (2 virtual GPUs) joins.
        await using var tailClient = await AdminClient.ConnectAsync(routerAdmin, ct: ct);
        var tailLines = new List<JsonNode?>();
        var tail = tailClient.RunStreamAsync("cluster tail", ["-n", "2"], l => { lock (tailLines) tailLines.Add(l.Json); return Task.CompletedTask; }, ct);
        await Task.Delay(500, ct); // let the subscription start before the join
        var hostBAddress = $"akka.tcp://apb@127.0.0.1:{p[4]}";
        Start("host-b", p[4], p[5], "gpu-host", seed, ("APB_VIRTUAL_HOSTS", "2"));
        var tailFinal = await tail.WaitAsync(Bound, ct);
        Assert.Equal(AdminExitCodes.Ok, tailFinal.ExitCode);
        Assert.Equal(["joined", "up"], tailLines.Select(j => j!["event"]!.GetValue<string>()));
        Assert.All(tailLines, j => Assert.Equal(hostBAddress, j!["address"]!.GetValue<string>()));

        await Eventually("3 hosts in gpu list", async () => (await GpuHosts(admin, ct)).Count == 3);
        var hosts = await GpuHosts(admin, ct);
        Assert.Equal(2, hosts.Count(h => h["address"]!.GetValue<string>() == hostBAddress));

        // Prometheus endpoint: the router's view, refreshed at scrape time.
        using var http = new HttpClient();
        var metrics = await http.GetStringAsync($"http://127.0.0.1:{p[6]}/metrics", ct);
        Assert.Contains("apb_router_hosts 3", metrics);
        Assert.Contains("apb_host_kv_bytes{host=\"127.0.0.1:" + p[4] + "/gpu1\"}", metrics);

        // Drain and query commands are answered by the router (RouterOps); QueryOpsClusterTests runs queries.
        var drain = await admin.RunAsync("gpu drain", ["-h", hosts[0]["hostId"]!.GetValue<string>()], ct);
        Assert.Equal(AdminExitCodes.Ok, drain.ExitCode);
        Assert.Equal(AdminExitCodes.Ok, (await admin.RunAsync("gpu undrain", ["-h", hosts[0]["hostId"]!.GetValue<string>()], ct)).ExitCode);
        var list = await admin.RunAsync("query list", [], ct);
        Assert.Equal(AdminExitCodes.Ok, list.ExitCode);
        Assert.Equal("no queries", list.Text);
        Assert.Equal(AdminExitCodes.CommandError, (await admin.RunAsync("query trace", ["-q", "nope"], ct)).ExitCode); // not found, at once

        // log tail sees the lines written while host-b is downed; cluster down removes it.
        await using var logClient = await AdminClient.ConnectAsync(routerAdmin, ct: ct);
        var logLines = new List<string>();
        var logTail = logClient.RunStreamAsync("log tail", ["-n", "1"], l => { logLines.Add(l.Text); return Task.CompletedTask; }, ct);
        await Task.Delay(300, ct);
        var down = await admin.RunAsync("cluster down", ["-a", hostBAddress], ct);
        Assert.Equal(AdminExitCodes.Ok, down.ExitCode);
        Assert.Equal(AdminExitCodes.Ok, (await logTail.WaitAsync(Bound, ct)).ExitCode);
        Assert.Single(logLines);
        await Eventually("host-b removed", async () => (await Members(admin, ct)).All(m => m["address"]!.GetValue<string>() != hostBAddress));

        // Documented exit codes from the shell.
        var output = new StringWriter();
        Assert.Equal(AdminExitCodes.Ok, await AdminShell.RunAsync(routerAdmin, ["gpu", "list"], output));
        Assert.Equal(AdminExitCodes.Usage, await AdminShell.RunAsync(routerAdmin, ["gpu", "explode"], output));
        Assert.Equal(AdminExitCodes.Usage, await AdminShell.RunAsync(routerAdmin, ["query", "cancel"], output));
        Assert.Equal(AdminExitCodes.CannotConnect, await AdminShell.RunAsync($"127.0.0.1:{p[5]}", ["cluster", "show"], output));
    }

    private void Start(string name, int port, int adminPort, string role, string seed, params (string Key, string Value)[] extra)
    {
        var env = new Dictionary<string, string>
        {
            ["CLUSTER_IP"] = "127.0.0.1",
            ["CLUSTER_PORT"] = port.ToString(),
            ["CLUSTER_SEEDS"] = seed,
            ["CLUSTER_ROLES"] = role,
            ["APB_ADMIN_PORT"] = adminPort.ToString(),
            ["APB_CONFIG"] = _opsFile,
        };
        foreach (var (key, value) in extra) env[key] = value;
        _nodes.Add(new NodeProcess(name, env));
    }

    private static async Task<List<JsonNode>> Members(AdminClient admin, CancellationToken ct) =>
        (await admin.RunAsync("cluster show", [], ct)).Json!["members"]!.AsArray().Select(m => m!).ToList();

    private static async Task<int> UpMembers(AdminClient admin, CancellationToken ct) =>
        (await Members(admin, ct)).Count(m => m["status"]!.GetValue<string>() == "Up");

    private static async Task<List<JsonNode>> GpuHosts(AdminClient admin, CancellationToken ct)
    {
        var response = await admin.RunAsync("gpu list", [], ct);
        return response.ExitCode == AdminExitCodes.Ok ? response.Json!.AsArray().Select(h => h!).ToList() : [];
    }

    private async Task<AdminClient> ConnectWithRetry(string endpoint, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow + Bound;
        while (true)
        {
            try
            {
                return await AdminClient.ConnectAsync(endpoint, ct: ct);
            }
            catch (AdminConnectionException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(250, ct);
            }
        }
    }

    private async Task Eventually(string what, Func<Task<bool>> condition)
    {
        var deadline = DateTime.UtcNow + Bound;
        while (DateTime.UtcNow < deadline)
        {
            if (await condition()) return;
            await Task.Delay(250);
        }
        Assert.Fail($"not within {Bound.TotalSeconds}s: {what}\n" +
                    string.Join("\n", _nodes.Select(n => $"----- {n.Name} -----\n{n.Output[Math.Max(0, n.Output.Length - 3000)..]}")));
    }

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
