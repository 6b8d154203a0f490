using System.Globalization;
using System.Text.RegularExpressions;
using System.Text.Json.Nodes;
using ApbCluster.Admin;
using ApbCluster.Client;
using ApbCluster.Contracts;
using ApbCluster.Runtime.Tests.Engine;
using static ApbCluster.Runtime.Tests.Cluster.ClusterProcesses;

namespace ApbCluster.Runtime.Tests.Cluster;

/// <summary>
/// The router's operations on real apb-node processes (a router, one gpu-host node with two virtual
/// hosts, random:tiny:7, slow prefill layers): query metrics move after a real query; `gpu drain`
/// keeps the next plan off a host and `undrain` brings it back; `query list` shows a running
/// query, `query trace` streams its progress and `query cancel` through the admin shell ends it with
/// the hosts' KV freed.
/// </summary>
public sealed class QueryOpsClusterTests : IDisposable
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(40);
    private readonly NodeGroup _nodes = new("apb.gpu-host.register-interval = 1s\n");

    [Fact]
    public async Task Metrics_drain_list_trace_and_cancel_on_a_real_cluster()
    {
        var ct = TestContext.Current.CancellationToken;
        var p = FreePorts(6);
        var seed = $"akka.tcp://apb@127.0.0.1:{p[0]}";
        var routerAdmin = $"127.0.0.1:{p[1]}";
        Start("router", p[0], p[1], "router", seed, ("APB_METRICS_PORT", p[4].ToString()));
        Start("hosts", p[2], p[3], "gpu-host", seed, ("APB_VIRTUAL_HOSTS", "2"), ("APB_TEST_LAYER_DELAY_MS", "800"), ("APB_METRICS_PORT", p[5].ToString()));
        string host0 = $"127.0.0.1:{p[2]}/gpu0", host1 = $"127.0.0.1:{p[2]}/gpu1";
        await using var admin = await ConnectWithRetry(routerAdmin, ct);
        await Eventually("2 hosts Ready in gpu list", async () => (await GpuHosts(admin, ct)).Count(h => State(h) == HostState.Ready) == 2);
        await using var client = ClusterQueryClient.Connect([$"127.0.0.1:{p[0]}"], new ClusterQueryClientOptions { IdleTimeout = TimeSpan.FromSeconds(20) });

        // 1. A real query moves the query metrics on the router's /metrics.
        using var http = new HttpClient();
        var before = Metric(await http.GetStringAsync($"http://127.0.0.1:{p[4]}/metrics", ct), "apb_queries_total{outcome=\"ok\"}");
        var (done, accepted) = await RunToEnd(client, Query("q-metrics", 3), ct);
        Assert.Equal([host0, host1], accepted.Plan.HostsInRingOrder);
        var metrics = await http.GetStringAsync($"http://127.0.0.1:{p[4]}/metrics", ct);
        Assert.Equal(before + 1, Metric(metrics, "apb_queries_total{outcome=\"ok\"}"));
        Assert.Equal(1, Metric(metrics, "apb_queries_submitted_total"));
        Assert.Equal(done.GeneratedTokens, Metric(metrics, "apb_generated_tokens_total"));
        Assert.True(Metric(metrics, "apb_query_phase_seconds_count{phase=\"prefill\"}") >= 1, metrics);
        Assert.True(Metric(metrics, "apb_decode_tokens_per_second_count") >= 1, metrics);
        var hostMetrics = await http.GetStringAsync($"http://127.0.0.1:{p[5]}/metrics", ct);
        Assert.True(Metric(hostMetrics, "apb_prefill_layer_seconds_count") >= 8, hostMetrics); // 4 layers on each of 2 hosts

        // 2. Drain: the next plan leaves host1 out, gpu list shows it Draining; undrain brings it back.
        var drain = await admin.RunAsync("gpu drain", ["-h", host1], ct);
        Assert.Equal(AdminExitCodes.Ok, drain.ExitCode);
        Assert.Equal(HostState.Draining, State((await GpuHosts(admin, ct)).Single(h => h["hostId"]!.GetValue<string>() == host1)));
        Assert.Equal(AdminExitCodes.CommandError, (await admin.RunAsync("gpu drain", ["-h", "no-such-host"], ct)).ExitCode);
        (_, accepted) = await RunToEnd(client, Query("q-drained", 3), ct);
        Assert.Equal([host0], accepted.Plan.HostsInRingOrder);
        Assert.Equal(AdminExitCodes.Ok, (await admin.RunAsync("gpu undrain", ["-h", host1], ct)).ExitCode);

        // 3. A long query (undrained: both hosts) shows in query list, streams through query trace,
        // and query cancel in the shell ends it; every host frees its KV.
        var events = new List<object>();
        var running = Task.Run(async () =>
        {
            await foreach (var e in client.AskAsync(Query("q-long", 8000), ct)) lock (events) events.Add(e);
        }, ct);
        await Eventually("q-long in query list", async () =>
            (await admin.RunAsync("query list", [], ct)).Json is JsonArray list && list.Any(q => q!["queryId"]!.GetValue<string>() == "q-long"));
        var listed = (await admin.RunAsync("query list", [], ct)).Json!.AsArray().Single(q => q!["queryId"]!.GetValue<string>() == "q-long")!;
        Assert.Contains(listed["phase"]!.GetValue<string>(), new[] { "prefill", "decode" });
        Assert.Equal([host0, host1], listed["hosts"]!.AsArray().Select(h => h!.GetValue<string>()));

        await using var traceClient = await AdminClient.ConnectAsync(routerAdmin, ct: ct);
        var traceLines = new List<string>();
        var trace = traceClient.RunStreamAsync("query trace", ["-q", "q-long"], l => { lock (traceLines) traceLines.Add(l.Text); return Task.CompletedTask; }, ct);
        await Eventually("trace streams prefill progress and tokens", () =>
        {
            lock (traceLines) return Task.FromResult(traceLines.Any(l => l.StartsWith("prefill ") && l.Contains(host0)) && traceLines.Any(l => l.StartsWith("tokens #")));
        });
        await Eventually("KV held while decoding", async () => (await GpuHosts(admin, ct)).Any(h => h["kvBytes"]!.GetValue<long>() > 0));

        var cancel = await admin.RunAsync("query cancel", ["-q", "q-long"], ct);
        Assert.Equal(AdminExitCodes.Ok, cancel.ExitCode);
        var traceFinal = await trace.WaitAsync(Bound, ct);
        Assert.Equal(AdminExitCodes.Ok, traceFinal.ExitCode);
        Assert.StartsWith("cancelled", traceFinal.Text);
        await running.WaitAsync(Bound, ct);
        lock (events) Assert.IsType<QueryCancelled>(events[^1]);
        await Eventually("KV freed and hosts Ready", async () =>
            (await GpuHosts(admin, ct)) is { Count: 2 } hosts && hosts.All(h => h["kvBytes"]!.GetValue<long>() == 0 && State(h) == HostState.Ready));
        Assert.Equal("no queries", (await admin.RunAsync("query list", [], ct)).Text);
        metrics = await http.GetStringAsync($"http://127.0.0.1:{p[4]}/metrics", ct);
        Assert.Equal(1, Metric(metrics, "apb_queries_total{outcome=\"cancelled\"}"));
        Assert.Equal(0, Metric(metrics, $"apb_host_kv_bytes{{host=\"{host0}\"}}"));
        Assert.Equal(AdminExitCodes.CommandError, (await admin.RunAsync("query trace", ["-q", "q-long"], ct)).ExitCode); // finished: not found
    }

    private static SubmitQuery Query(string id, int maxNew) =>
        new(id, QueryContext.FromText(InProcessReference.Context(6)), " How many marbles are in box 3?", GenerationOptions.Greedy(maxNew), AttentionMode.Apb, null);

    private async Task<(QueryCompleted Done, QueryAccepted Accepted)> RunToEnd(ClusterQueryClient client, SubmitQuery query, CancellationToken ct)
    {
        QueryAccepted? accepted = null;
        object? last = null;
        await foreach (var e in client.AskAsync(query, ct))
        {
            accepted = e as QueryAccepted ?? accepted;
            last = e;
        }
        if (last is not QueryCompleted done || accepted is null)
            throw new Xunit.Sdk.XunitException($"{query.QueryId}: {last}\n{NodeOutputs()}");
        return (done, accepted);
    }

    /// <summary>A sample's value in Prometheus text; 0 when absent.</summary>
    private static double Metric(string text, string sample)
    {
        var m = Regex.Match(text, "^" + Regex.Escape(sample) + @" (\S+)$", RegexOptions.Multiline);
        return m.Success ? double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : 0;
    }

    private static HostState State(JsonNode host) => (HostState)host["state"]!.GetValue<int>();

    private void Start(string name, int port, int adminPort, string role, string seed, params (string Key, string Value)[] extra) =>
        _nodes.Start(name, NodeEnvironment(port, adminPort, role, seed, _nodes.OpsFile!), extra);

    private Task<AdminClient> ConnectWithRetry(string endpoint, CancellationToken ct) => _nodes.ConnectAdminAsync(endpoint, Bound, ct);

    private Task Eventually(string what, Func<Task<bool>> condition) => _nodes.Eventually(what, Bound, condition);

    private string NodeOutputs() => _nodes.Outputs();

    public void Dispose() => _nodes.Dispose();
}
