using System.Text.Json.Nodes;
using ApbCluster.Admin;
using static ApbCluster.Runtime.Tests.Cluster.ClusterProcesses;

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
    private readonly NodeGroup _nodes = new("apb.gpu-host.register-interval = 1s\nakka.cluster.split-brain-resolver.stable-after = 3s\n");

    [Fact]
    public async Task Admin_streams_gpu_list_down_and_metrics_on_a_real_cluster()
    {
        var ct = TestContext.Current.CancellationToken;
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

    /// <summary>A node with the ops file and no model (APB_MODEL unset).</summary>
    private void Start(string name, int port, int adminPort, string role, string seed, params (string Key, string Value)[] extra) =>
        _nodes.Start(name, BaseEnvironment(port, adminPort, role, seed), [("APB_CONFIG", _nodes.OpsFile!), .. extra]);

    private static async Task<List<JsonNode>> Members(AdminClient admin, CancellationToken ct) =>
        (await admin.RunAsync("cluster show", [], ct)).Json!["members"]!.AsArray().Select(m => m!).ToList();

    private static async Task<int> UpMembers(AdminClient admin, CancellationToken ct) =>
        (await Members(admin, ct)).Count(m => m["status"]!.GetValue<string>() == "Up");

    private Task<AdminClient> ConnectWithRetry(string endpoint, CancellationToken ct) => _nodes.ConnectAdminAsync(endpoint, Bound, ct);

    private Task Eventually(string what, Func<Task<bool>> condition) => _nodes.Eventually(what, Bound, condition);

    public void Dispose() => _nodes.Dispose();
}
