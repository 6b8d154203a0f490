using System.Text.Json.Nodes;
using ApbCluster.Admin;
using ApbCluster.Client;
using ApbCluster.Contracts;
using ApbCluster.Runtime.Tests.Engine;
using static ApbCluster.Runtime.Tests.Cluster.ClusterProcesses;

namespace ApbCluster.Runtime.Tests.Cluster;

/// <summary>
/// How nodes die and stop, on a router (HTTP and metrics on) and three gpu-host processes: a query sent right after a
/// host was SIGKILLed runs on the others; a host SIGSTOPped until the cluster downed it exits non-zero when it runs
/// again (so an on-failure supervisor restarts it); SIGTERM makes every role leave and exit 0.
/// </summary>
[Collection(LoopbackClusterCollection.Name)]
public sealed class NodeLifecycleClusterTests : IDisposable
{
    private static readonly TimeSpan JoinBound = TimeSpan.FromSeconds(45);
    private static readonly TimeSpan DownBound = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan ExitBound = TimeSpan.FromSeconds(30);
    private const string Question = " How many marbles are in box 3?";
    private const int MaxNew = 3;

    private readonly NodeGroup _nodes = new("""
        akka.cluster.split-brain-resolver.stable-after = 3s
        apb.gpu-host.register-interval = 1s
        apb.router.blame-grace = 500ms
        """);

    [Fact]
    public async Task Host_deaths_and_stops_leave_the_cluster_serving_and_exit_with_the_right_code()
    {
        var ct = TestContext.Current.CancellationToken;
        var p = FreePorts(10);
        var seed = $"akka.tcp://apb@127.0.0.1:{p[0]}";
        var router = _nodes.Start("router", NodeEnvironment(p[0], p[1], "router", seed, _nodes.OpsFile!),
            ("APB_HTTP_PORT", p[8].ToString()), ("APB_METRICS_PORT", p[9].ToString()));
        var hostA = _nodes.Start("host-a", NodeEnvironment(p[2], p[3], "gpu-host", seed, _nodes.OpsFile!));
        var hostB = _nodes.Start("host-b", NodeEnvironment(p[4], p[5], "gpu-host", seed, _nodes.OpsFile!));
        var hostC = _nodes.Start("host-c", NodeEnvironment(p[6], p[7], "gpu-host", seed, _nodes.OpsFile!));
        var routerAdmin = $"127.0.0.1:{p[1]}";
        await using (var admin = await _nodes.ConnectAdminAsync(routerAdmin, JoinBound, ct))
            await _nodes.Eventually("3 hosts registered", JoinBound, async () => (await GpuHosts(admin, ct)).Count == 3);

        await using var client = ClusterQueryClient.Connect([$"127.0.0.1:{p[0]}"], new ClusterQueryClientOptions { IdleTimeout = TimeSpan.FromSeconds(20) });

        // 1. SIGKILL a host and ask at once: the router has not downed it yet, but the query runs on the other two.
        hostC.Kill();
        Assert.True(await hostC.WaitForExitAsync(TimeSpan.FromSeconds(5)));
        await AssertAnswer(client, "q-after-kill", hosts: 2, ct);

        // 2. SIGSTOP a host until the cluster removed it, then SIGCONT: it must exit non-zero, not 0.
        await using (var admin = await _nodes.ConnectAdminAsync(routerAdmin, JoinBound, ct))
        {
            await _nodes.Eventually("host-c removed", DownBound, async () => await MemberAddresses(admin, ct) is { Count: > 0 } m && !m.Contains($"akka.tcp://apb@127.0.0.1:{p[6]}"));
            hostB.Freeze();
            await _nodes.Eventually("frozen host-b removed", DownBound, async () => await MemberAddresses(admin, ct) is { Count: > 0 } m && !m.Contains($"akka.tcp://apb@127.0.0.1:{p[4]}"));
        }
        hostB.Thaw();
        Assert.True(await hostB.WaitForExitAsync(ExitBound), $"host-b still runs after it was downed and thawed\n{_nodes.Outputs()}");
        Assert.True(hostB.ExitCode == 3, $"host-b exit code {hostB.ExitCode}\n{_nodes.Outputs()}");

        // 3. SIGTERM: a host, then the router (HTTP front door, metrics and admin endpoint open) leave and exit 0.
        foreach (var node in new[] { hostA, router })
        {
            node.Terminate();
            Assert.True(await node.WaitForExitAsync(ExitBound), $"{node.Name} still runs {ExitBound} after SIGTERM\n{_nodes.Outputs()}");
            Assert.True(node.ExitCode == 0, $"{node.Name} exit code {node.ExitCode} after SIGTERM\n{_nodes.Outputs()}");
            Assert.Contains("apb-node: stopped (stop requested), exit 0", node.Output);
        }
    }

    private async Task AssertAnswer(ClusterQueryClient client, string id, int hosts, CancellationToken ct)
    {
        var query = new SubmitQuery(id, QueryContext.FromText(InProcessReference.Context(6)), Question, GenerationOptions.Greedy(MaxNew), AttentionMode.Apb, null);
        var (terminal, chunks) = await client.AskToEndAsync(query, ct);
        Assert.True(terminal is QueryCompleted, $"{id}: {terminal}\n{_nodes.Outputs()}");
        var prompt = InProcessReference.Prompt(InProcessReference.Context(6), Question);
        Assert.Equal(InProcessReference.Tokens(AttentionMode.Apb, hosts, prompt, MaxNew).Select(t => (int)t), chunks.SelectMany(c => c.TokenIds));
    }

    private static async Task<List<string>> MemberAddresses(AdminClient admin, CancellationToken ct)
    {
        var response = await admin.RunAsync("cluster show", [], ct);
        return response.ExitCode != AdminExitCodes.Ok ? [] : response.Json!["members"]!.AsArray().Select(m => m!["address"]!.GetValue<string>()).ToList();
    }

    public void Dispose() => _nodes.Dispose();
}
