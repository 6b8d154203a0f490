using System.Text.Json.Nodes;
using ApbCluster.Admin;
using ApbCluster.Client;
using ApbCluster.Contracts;
using ApbCluster.Runtime.Tests.Engine;

namespace ApbCluster.Runtime.Tests.Cluster;

/// <summary>
/// The real thing: two router and three gpu-host apb-node processes on loopback (random:tiny:7
/// weights), queried from outside through ClusterQueryClient. Answers must equal the in-process run;
/// a host SIGKILLed mid-prefill fails the query naming it within the bound, is downed by the
/// split-brain resolver (keep-majority, stable-after 3s from a config file) and the next query
/// runs on the rest; a partitioned (SIGSTOPped) host likewise; killing the router node moves the singleton and queries work again.
/// </summary>
[Collection(LoopbackClusterCollection.Name)]
public sealed class MultiProcessClusterTests : IDisposable
{
    private static readonly TimeSpan JoinBound = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan DownBound = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan RouterLossBound = TimeSpan.FromSeconds(25); // client death watch, else its 20 s idle timeout
    private static readonly TimeSpan FailureBound = TimeSpan.FromSeconds(12); // collective deadline 10 s + margin

    private readonly NodeGroup _nodes = new("""
        akka.cluster.split-brain-resolver.stable-after = 3s
        akka.cluster.failure-detector.acceptable-heartbeat-pause = 3s
        apb.gpu-host.register-interval = 1s
        apb.router.blame-grace = 500ms
        """);

    [Fact]
    public async Task Queries_run_through_the_cluster_survive_a_killed_host_and_a_killed_router()
    {
        var ct = TestContext.Current.CancellationToken;
        var ports = ClusterProcesses.FreePorts(10);
        var seed = $"akka.tcp://apb@127.0.0.1:{ports[0]}";
        var routerAdmin = $"127.0.0.1:{ports[1]}";
        var routerA = Start("router-a", ports[0], ports[1], "router", seed);
        Start("router-b", ports[2], ports[3], "router", seed);
        Start("host-a", ports[4], ports[5], "gpu-host", seed, model: true);
        var hostB = Start("host-b", ports[6], ports[7], "gpu-host", seed, model: true);
        var hostC = Start("host-c", ports[8], ports[9], "gpu-host", seed, model: true);
        var hostCId = $"127.0.0.1:{ports[8]}/gpu0";
        var hostCAddress = $"akka.tcp://apb@127.0.0.1:{ports[8]}";

        await using (var admin = await ConnectWithRetry(routerAdmin, ct))
        {
            await Eventually("5 members Up", JoinBound, async () =>
            {
                var members = await Members(admin, ct);
                return members.Count == 5 && members.All(m => m["status"]!.GetValue<string>() == "Up");
            });
            await Eventually("3 hosts in gpu list", JoinBound, async () => (await GpuHosts(admin, ct)).Count == 3);

            // Shell exit codes against a live node.
            var output = new StringWriter();
            Assert.Equal(AdminExitCodes.Ok, await AdminShell.RunAsync(routerAdmin, ["cluster", "show"], output));
            Assert.Contains(hostCAddress, output.ToString());
            Assert.Equal(AdminExitCodes.Usage, await AdminShell.RunAsync(routerAdmin, ["cluster", "explode"], output));
            Assert.Equal(AdminExitCodes.CommandError, await AdminShell.RunAsync(routerAdmin, ["cluster", "down", "-a", "akka.tcp://apb@127.0.0.1:1"], output));
        }

        await using var client = ClusterQueryClient.Connect([$"127.0.0.1:{ports[0]}", $"127.0.0.1:{ports[2]}"],
            new ClusterQueryClientOptions { IdleTimeout = TimeSpan.FromSeconds(20) });

        // 1. The answer through 3 processes equals the in-process run of the same strategy, token for token.
        await AssertAnswerMatchesInProcess(client, "q-3-hosts", hosts: 3, ct);

        // 2. SIGKILL a host mid-prefill: the caller hears which host, within the bound; it never hangs.
        var killed = DateTime.MinValue;
        QueryFailed? failure = null;
        await foreach (var e in client.AskAsync(Query("q-kill"), ct))
        {
            if (e is PrefillProgress && killed == DateTime.MinValue)
            {
                hostC.Kill();
                killed = DateTime.UtcNow;
            }
            failure = e as QueryFailed ?? failure;
            Assert.False(e is QueryCompleted, $"the query completed although {hostCId} was killed mid-prefill\n{NodeOutputs()}");
        }
        Assert.NotNull(failure);
        var failedAfter = DateTime.UtcNow - killed;
        Assert.True(failure.FailingHost == hostCId, $"blamed {failure.FailingHost}: {failure.Reason}");
        TestContext.Current.TestOutputHelper?.WriteLine($"SIGKILL of {hostCId}: failure after {failedAfter.TotalSeconds:F2} s: {failure.Reason}");
        Assert.True(failedAfter < FailureBound, $"the failure took {failedAfter}");

        // 3. The cluster downs the host; the next query runs on the remaining two and is right.
        await using (var admin = await ConnectWithRetry(routerAdmin, ct))
        {
            await Eventually("host-c removed from membership", DownBound, async () =>
                (await Members(admin, ct)).All(m => m["address"]!.GetValue<string>() != hostCAddress));
            await Eventually("host-c gone from gpu list", TimeSpan.FromSeconds(10), async () => (await GpuHosts(admin, ct)).Count == 2);
        }
        await AssertAnswerMatchesInProcess(client, "q-2-hosts", hosts: 2, ct);

        // 3b. A partitioned host (SIGSTOP: no FIN, no heartbeats) is handled the same way.
        var hostBId = $"127.0.0.1:{ports[6]}/gpu0";
        var frozen = DateTime.MinValue;
        failure = null;
        await foreach (var e in client.AskAsync(Query("q-partition"), ct))
        {
            if (e is PrefillProgress && frozen == DateTime.MinValue)
            {
                hostB.Freeze();
                frozen = DateTime.UtcNow;
            }
            failure = e as QueryFailed ?? failure;
        }
        Assert.NotNull(failure);
        Assert.True(failure.FailingHost == hostBId, $"blamed {failure.FailingHost}: {failure.Reason}");
        var frozenFor = DateTime.UtcNow - frozen;
        TestContext.Current.TestOutputHelper?.WriteLine($"SIGSTOP of {hostBId}: failure after {frozenFor.TotalSeconds:F2} s: {failure.Reason}");
        Assert.True(frozenFor < FailureBound, $"the failure took {frozenFor}");
        await using (var admin = await ConnectWithRetry(routerAdmin, ct))
            await Eventually("host-b downed and gone from gpu list", DownBound, async () => (await GpuHosts(admin, ct)).Count == 1);
        await AssertAnswerMatchesInProcess(client, "q-1-host", hosts: 1, ct);

        // 4. Kill the router node holding the singleton mid-query: the caller's query fails cleanly (never
        // hangs), the singleton moves to router-b, hosts re-register, queries work.
        var routerKilled = DateTime.MinValue;
        object? lastEvent = null;
        await foreach (var e in client.AskAsync(Query("q-router-lost"), ct))
        {
            if (e is PrefillProgress && routerKilled == DateTime.MinValue)
            {
                routerA.Kill();
                routerKilled = DateTime.UtcNow;
            }
            lastEvent = e;
        }
        Assert.True(lastEvent is QueryFailed, $"in-flight query on the lost router ended with {lastEvent}");
        Assert.True(DateTime.UtcNow - routerKilled < RouterLossBound, $"the caller heard of the router loss after {DateTime.UtcNow - routerKilled}");
        await Eventually("router singleton on router-b with the last host", DownBound, async () =>
        {
            try
            {
                var status = await client.StatusAsync(TimeSpan.FromSeconds(2));
                return status.RouterAddress.EndsWith($":{ports[2]}") && status.Hosts.Count == 1;
            }
            catch (Exception)
            {
                return false;
            }
        });
        await AssertAnswerMatchesInProcess(client, "q-after-router-loss", hosts: 1, ct);
    }

    private static readonly string Question = " How many marbles are in box 3?";

    private static SubmitQuery Query(string id) =>
        new(id, QueryContext.FromText(InProcessReference.Context(6)), Question, GenerationOptions.Greedy(MaxNew), AttentionMode.Apb, null);

    private const int MaxNew = 5;

    private async Task AssertAnswerMatchesInProcess(ClusterQueryClient client, string id, int hosts, CancellationToken ct)
    {
        var (terminal, chunks) = await client.AskToEndAsync(Query(id), ct);
        if (terminal is not QueryCompleted done)
        {
            Assert.Fail($"{id}: {terminal}\n{NodeOutputs()}");
            return;
        }
        var expected = InProcessReference.Tokens(AttentionMode.Apb, hosts, InProcessReference.Prompt(InProcessReference.Context(6), Question), MaxNew);
        Assert.Equal(expected.Select(t => (int)t), chunks.SelectMany(c => c.TokenIds));
        Assert.Equal(expected.Length, done.GeneratedTokens);
    }

    private NodeProcess Start(string name, int port, int adminPort, string role, string seed, bool model = false)
    {
        var env = ClusterProcesses.NodeEnvironment(port, adminPort, role, seed, _nodes.OpsFile!); // routers tokenize with the model, hosts run it
        if (model) env["APB_TEST_LAYER_DELAY_MS"] = "400"; // prefill slow enough to kill a host mid-way
        return _nodes.Start(name, env);
    }

    private static async Task<List<JsonNode>> Members(AdminClient admin, CancellationToken ct)
    {
        var response = await admin.RunAsync("cluster show", [], ct);
        Assert.Equal(AdminExitCodes.Ok, response.ExitCode);
        return response.Json!["members"]!.AsArray().Select(m => m!).ToList();
    }

    private static Task<List<JsonNode>> GpuHosts(AdminClient admin, CancellationToken ct) => ClusterProcesses.GpuHosts(admin, ct);

    private Task<AdminClient> ConnectWithRetry(string endpoint, CancellationToken ct) =>
        _nodes.ConnectAdminAsync(endpoint, JoinBound, ct, connectTimeout: TimeSpan.FromSeconds(5));

    private Task Eventually(string what, TimeSpan bound, Func<Task<bool>> condition) => _nodes.Eventually(what, bound, condition);

    private string NodeOutputs() => _nodes.Outputs();

    public void Dispose() => _nodes.Dispose();
}
