using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using ApbCluster.Admin;
using static ApbCluster.Runtime.Tests.Cluster.ClusterProcesses;

namespace ApbCluster.Runtime.Tests.Cluster;

/// <summary>
/// The HTTP front door on router-b while the router singleton runs on router-a (the first seed, so the oldest), with
/// one slow gpu-host process: an operator's `query cancel` reaches the streaming caller as an error event; a SIGKILL of
/// router-a ends the stream in flight with a router_unavailable error event within 5 s; a request sent right after the
/// kill waits for the new singleton on router-b and is answered.
/// </summary>
[Collection(LoopbackClusterCollection.Name)]
public sealed class RouterFailoverClusterTests : IDisposable
{
    private static readonly TimeSpan JoinBound = TimeSpan.FromSeconds(45);
    private static readonly TimeSpan InFlightErrorBound = TimeSpan.FromSeconds(5); // what the front door promises
    private static readonly TimeSpan ResumeBound = TimeSpan.FromSeconds(30); // detection + stable-after 3s + hand-over, generous

    private readonly NodeGroup _nodes = new("""
        akka.cluster.split-brain-resolver.stable-after = 3s
        apb.gpu-host.register-interval = 1s
        apb.router.blame-grace = 500ms
        """);

    [Fact]
    public async Task Http_callers_see_an_operator_cancel_and_survive_the_loss_of_the_router_singleton()
    {
        var ct = TestContext.Current.CancellationToken;
        var p = FreePorts(7);
        var seed = $"akka.tcp://apb@127.0.0.1:{p[0]}";
        var routerA = _nodes.Start("router-a", NodeEnvironment(p[0], p[1], "router", seed, _nodes.OpsFile!));
        _nodes.Start("router-b", NodeEnvironment(p[2], p[3], "router", seed, _nodes.OpsFile!), ("APB_HTTP_PORT", p[6].ToString()));
        _nodes.Start("host", NodeEnvironment(p[4], p[5], "gpu-host", seed, _nodes.OpsFile!), ("APB_TEST_LAYER_DELAY_MS", "600"));
        await using var admin = await _nodes.ConnectAdminAsync($"127.0.0.1:{p[3]}", JoinBound, ct);
        await _nodes.Eventually("the host registered", JoinBound, async () => (await GpuHosts(admin, ct)).Count == 1);
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{p[6]}"), Timeout = TimeSpan.FromSeconds(90) };

        // 1. `query cancel` from the admin shell while the stream runs: the caller gets an error event, not a quiet end.
        var cancelled = await StreamAsync(http, async () =>
        {
            string? id = null;
            AdminResponse? last = null;
            var polls = new List<string>();
            for (var listing = Stopwatch.StartNew(); id is null && listing.Elapsed < TimeSpan.FromSeconds(10); await Task.Delay(200, ct))
            {
                last = await admin.RunAsync("query list", [], ct);
                polls.Add($"{DateTime.UtcNow:HH:mm:ss.fff} {last.Text}");
                id = last.Json is JsonArray list && list.Count > 0 ? list[0]!["queryId"]!.GetValue<string>() : null;
            }
            Assert.True(id is not null, $"query list: {string.Join("\n", polls)}\n{_nodes.Outputs()}");
            Assert.Equal(AdminExitCodes.Ok, (await admin.RunAsync("query cancel", ["-q", id!], ct)).ExitCode);
        }, ct);
        Assert.Equal("query_cancelled", ErrorCode(cancelled.Lines));
        Assert.Equal("data: [DONE]", cancelled.Lines[^1].Line);

        // 2. SIGKILL the singleton's node mid-stream: the stream ends with an error event within the bound.
        var killed = new Stopwatch();
        var lost = await StreamAsync(http, () =>
        {
            routerA.Kill();
            killed.Start();
            return Task.CompletedTask;
        }, ct);
        var errorAfter = killed.Elapsed;
        TestContext.Current.TestOutputHelper?.WriteLine($"router singleton SIGKILLed: stream error after {errorAfter.TotalSeconds:F2} s");
        Assert.True(ErrorCode(lost.Lines) == "router_unavailable", string.Join("\n", lost.Lines.Select(l => l.Line)) + "\n" + _nodes.Outputs());
        Assert.True(errorAfter < InFlightErrorBound, $"the stream's error came {errorAfter} after the kill");

        // 3. A request sent right after the kill waits for the new singleton (router-b) and is answered.
        var answer = await http.PostAsJsonAsync("/v1/chat/completions", Body(stream: false), ct);
        var resumed = killed.Elapsed;
        TestContext.Current.TestOutputHelper?.WriteLine($"first answer {resumed.TotalSeconds:F2} s after the kill");
        if (answer.StatusCode != HttpStatusCode.OK) Assert.Fail($"{(int)answer.StatusCode}: {await answer.Content.ReadAsStringAsync(ct)}\n{_nodes.Outputs()}");
        Assert.True(resumed < ResumeBound, $"service resumed {resumed} after the kill");
    }

    private static object Body(bool stream) => new
    {
        model = "random:tiny:7",
        stream,
        max_tokens = 4,
        messages = new object[]
        {
            new { role = "system", content = string.Join(' ', Enumerable.Repeat("The quick brown fox jumps over the lazy dog.", 20)) },
            new { role = "user", content = "What does the fox do?" },
        },
    };

    /// <summary>Posts a streamed request and reads its lines as they come; <paramref name="onFirstLine"/> runs once the stream has started.</summary>
    private async Task<(List<(TimeSpan At, string Line)> Lines, TimeSpan Total)> StreamAsync(HttpClient http, Func<Task> onFirstLine, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = new StringContent(JsonSerializer.Serialize(Body(stream: true)), Encoding.UTF8, "application/json"),
        };
        // A stream that ends in an error may leave its connection closed by the server; the next request must not be
        // sent on it (a POST is not retried on a reset), so each stream gets a connection of its own.
        request.Headers.ConnectionClose = true;
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
        if (response.StatusCode != HttpStatusCode.OK) // (an interpolated assertion message would read the whole stream first)
            Assert.Fail($"{(int)response.StatusCode}: {await response.Content.ReadAsStringAsync(ct)}\n{_nodes.Outputs()}");
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(ct));
        var clock = Stopwatch.StartNew();
        var lines = new List<(TimeSpan, string)>();
        while (await reader.ReadLineAsync(ct) is { } line)
        {
            if (line.Length == 0) continue;
            lines.Add((clock.Elapsed, line));
            if (lines.Count == 1) await onFirstLine();
        }
        return (lines, clock.Elapsed);
    }

    /// <summary>The error code of the stream's error event; null when it has none.</summary>
    private static string? ErrorCode(List<(TimeSpan At, string Line)> lines) =>
        lines.Select(l => l.Line).Where(l => l.StartsWith("data: {", StringComparison.Ordinal))
            .Select(l => JsonNode.Parse(l["data: ".Length..])!["error"]?["code"]?.GetValue<string>()).LastOrDefault(c => c is not null);

    public void Dispose() => _nodes.Dispose();
}
