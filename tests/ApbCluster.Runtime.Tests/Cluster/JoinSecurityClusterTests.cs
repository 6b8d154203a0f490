using System.Text.Json.Nodes;
using ApbCluster.Admin;
using ApbCluster.Client;
using ApbCluster.Contracts;
using ApbCluster.Runtime.Tests.Engine;
using static ApbCluster.Runtime.Tests.Cluster.ClusterProcesses;

namespace ApbCluster.Runtime.Tests.Cluster;

/// <summary>
/// No stranger in the ring, on real apb-node processes: hosts with a wrong join secret, with none, or serving another
/// model are refused at registration (each stops with exit 4 and says why), are never planned, and the query runs on
/// the good host; a node with no secret and no insecure flag does not start; `node health` (the compose health check)
/// and the HTTP front door's GET /health are red while the router has no host and green once one registered.
/// </summary>
[Collection(LoopbackClusterCollection.Name)]
public sealed class JoinSecurityClusterTests : IDisposable
{
    private static readonly TimeSpan JoinBound = TimeSpan.FromSeconds(90);
    private static readonly TimeSpan ExitBound = TimeSpan.FromSeconds(120);
    private const string Question = " How many marbles are in box 3?";

    private readonly NodeGroup _nodes = new("""
        akka.cluster.split-brain-resolver.stable-after = 3s
        apb.gpu-host.register-interval = 1s
        """);

    [Fact]
    public async Task Hosts_with_a_wrong_or_no_secret_or_another_model_are_refused_and_never_planned()
    {
        var ct = TestContext.Current.CancellationToken;
        var p = FreePorts(10);
        var seed = $"akka.tcp://apb@127.0.0.1:{p[0]}";
        Dictionary<string, string> Env(int i, string role) => NodeEnvironment(p[2 * i], p[2 * i + 1], role, seed, _nodes.OpsFile!);
        var router = _nodes.Start("router", Env(0, "router"));
        _nodes.Start("good", Env(1, "gpu-host"));
        var wrongSecret = _nodes.Start("wrong-secret", Env(2, "gpu-host"), ("APB_JOIN_SECRET", "not-the-cluster-join-secret"));
        var noSecret = _nodes.Start("no-secret", Env(3, "gpu-host"), ("APB_JOIN_SECRET", ""), ("APB_ALLOW_INSECURE_JOIN", "on"));
        var otherModel = _nodes.Start("other-model", Env(4, "gpu-host"), ("APB_MODEL", "random:tiny:8"));

        (NodeProcess Node, string Why)[] strangers =
        [
            (wrongSecret, "proved another join secret than the router's"),
            (noSecret, "has no join secret, and this router requires one"),
            (otherModel, "serves model 'random:tiny:8' (fingerprint sha256:"),
        ];
        foreach (var (node, why) in strangers)
        {
            Assert.True(await node.WaitForExitAsync(ExitBound), $"{node.Name} still runs {ExitBound} after it joined\n{_nodes.Outputs()}");
            Assert.True(node.ExitCode == 4, $"{node.Name} exit code {node.ExitCode}\n{_nodes.Outputs()}");
            var refusal = node.Output.Split('\n').Where(l => l.Contains("the router refused this host")).ToList();
            Assert.True(refusal.Count >= 1 && refusal.All(l => l.Contains(why)), $"{node.Name} does not say why it stopped ({why})\n{node.Output}");
            Assert.Contains("apb-node: stopped (the router refused this node's host: ", node.Output);
            Assert.Contains("exit 4", node.Output.TrimEnd().Split('\n')[^1]);
            Assert.Contains(why, router.Output); // the router logs it too
        }
        // Both fingerprints and both model names, so an operator sees which node is off.
        var modelLine = router.Output.Split('\n').Single(l => l.Contains("serves model 'random:tiny:8'"));
        Assert.Matches(@"fingerprint sha256:[0-9a-f]{16}\) but the router serves 'random:tiny:7' \(fingerprint sha256:[0-9a-f]{16}\)", modelLine);

        // Only the good host is known, and a query runs on it alone (its tokens are the one-host reference's).
        var goodId = $"127.0.0.1:{p[2]}/gpu0";
        await using (var admin = await _nodes.ConnectAdminAsync($"127.0.0.1:{p[1]}", JoinBound, ct))
        {
            await _nodes.Eventually("the good host registered", JoinBound, async () => (await GpuHosts(admin, ct)).Count == 1);
            Assert.Equal([goodId], (await GpuHosts(admin, ct)).Select(h => (string)h["hostId"]!));
        }
        await using var client = ClusterQueryClient.Connect([$"127.0.0.1:{p[0]}"], new ClusterQueryClientOptions { IdleTimeout = TimeSpan.FromSeconds(30) });
        var query = new SubmitQuery("q-good-only", QueryContext.FromText(InProcessReference.Context(6)), Question, GenerationOptions.Greedy(3), AttentionMode.Apb, null);
        var events = new List<object>();
        await foreach (var e in client.AskAsync(query, ct)) events.Add(e);
        Assert.Equal([goodId], events.OfType<QueryAccepted>().Single().Plan.HostsInRingOrder);
        Assert.True(events[^1] is QueryCompleted, $"{events[^1]}\n{_nodes.Outputs()}");
        var prompt = InProcessReference.Prompt(InProcessReference.Context(6), Question);
        Assert.Equal(InProcessReference.Tokens(AttentionMode.Apb, 1, prompt, 3).Select(t => (int)t), events.OfType<TokenChunk>().SelectMany(c => c.TokenIds));
    }

    [Fact]
    public async Task A_node_without_a_join_secret_does_not_start()
    {
        var p = FreePorts(2);
        var env = BaseEnvironment(p[0], p[1], "gpu-host", $"akka.tcp://apb@127.0.0.1:{p[0]}");
        env.Remove("APB_JOIN_SECRET");
        var node = _nodes.Start("no-secret", env);
        Assert.True(await node.WaitForExitAsync(ExitBound), $"a node without a join secret still runs\n{node.Output}");
        Assert.Equal(2, node.ExitCode);
        var error = Assert.Single(node.Output.Split('\n'), l => l.Contains("configuration error"));
        Assert.StartsWith("apb-node: configuration error: no join secret: set APB_JOIN_SECRET", error);
        Assert.Contains("APB_ALLOW_INSECURE_JOIN=on", error);
        Assert.DoesNotContain("   at ", node.Output); // no stack trace
    }

    [Fact]
    public async Task Health_is_red_while_the_router_has_no_host_and_green_once_one_registered()
    {
        var ct = TestContext.Current.CancellationToken;
        var p = FreePorts(5);
        var seed = $"akka.tcp://apb@127.0.0.1:{p[0]}";
        _nodes.Start("router", NodeEnvironment(p[0], p[1], "router", seed, _nodes.OpsFile!), ("APB_HTTP_PORT", p[4].ToString()));
        await using var admin = await _nodes.ConnectAdminAsync($"127.0.0.1:{p[1]}", JoinBound, ct);
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{p[4]}"), Timeout = TimeSpan.FromSeconds(10) };

        // Up, but no host: red, saying so (a lone router that formed a cluster of its own looks like this).
        JsonNode? red = null;
        await _nodes.Eventually("the router is Up and health names its missing hosts", JoinBound, async () =>
        {
            var r = await admin.RunAsync("node health", [], ct);
            red = r.Json;
            return r.ExitCode == AdminExitCodes.CommandError && Check(r.Json, "member") is true && Check(r.Json, "router") is false;
        });
        Assert.Contains("0 reachable registered host(s), expects at least 1", red!.ToJsonString());
        // The HTTP front door's GET /health, for a load balancer, says the same. Kestrel binds after the admin
        // endpoint, so a refused connection only means "not listening yet".
        HttpResponseMessage? redHttp = null;
        await _nodes.Eventually("the HTTP front door listens", JoinBound, async () =>
        {
            try { redHttp = await http.GetAsync("/health", ct); return true; }
            catch (HttpRequestException) { return false; }
        });
        Assert.Equal(System.Net.HttpStatusCode.ServiceUnavailable, redHttp!.StatusCode);
        Assert.Contains("\"healthy\":false", await redHttp.Content.ReadAsStringAsync(ct));

        _nodes.Start("host", NodeEnvironment(p[2], p[3], "gpu-host", seed, _nodes.OpsFile!));
        await _nodes.Eventually("health green once the host registered", JoinBound, async () =>
            (await admin.RunAsync("node health", [], ct)).ExitCode == AdminExitCodes.Ok);
        var greenHttp = await http.GetAsync("/health", ct);
        Assert.Equal(System.Net.HttpStatusCode.OK, greenHttp.StatusCode);
        Assert.Contains("has 1 reachable registered host(s)", await greenHttp.Content.ReadAsStringAsync(ct));
        await using var hostAdmin = await _nodes.ConnectAdminAsync($"127.0.0.1:{p[3]}", JoinBound, ct);
        await _nodes.Eventually("the host node is healthy too", JoinBound, async () =>
            (await hostAdmin.RunAsync("node health", [], ct)).ExitCode == AdminExitCodes.Ok);
    }

    private static bool? Check(JsonNode? health, string name) =>
        health?["checks"]?.AsArray().FirstOrDefault(c => (string?)c?["name"] == name)?["ok"]?.GetValue<bool>();

    public void Dispose() => _nodes.Dispose();
}
