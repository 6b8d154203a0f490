using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using ApbCluster.Admin;
using ApbCluster.Engine;
using ApbCluster.Runtime.Tests.Http;
using static ApbCluster.Runtime.Tests.Cluster.ClusterProcesses;

namespace ApbCluster.Runtime.Tests.Cluster;

/// <summary>
/// The HTTP front door of a real router process in front of two real gpu-host processes
/// (random tiny model, CPU, TCP data plane): a streamed chat completion answers over SSE,
/// a lone user message answers, a stop string never reaches the stream, a bad request gets an
/// OpenAI error, and the metrics endpoint (scraped as localhost) counts the HTTP requests.
/// </summary>
public sealed class HttpClusterTests : IDisposable
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);
    private readonly NodeGroup _nodes = new();

    [Fact]
    public async Task Streamed_chat_completion_against_a_cpu_cluster()
    {
        var ct = TestContext.Current.CancellationToken;
        var p = FreePorts(8);
        var seed = $"akka.tcp://apb@127.0.0.1:{p[0]}";
        Start("router", p[0], p[1], "router", seed, ("APB_HTTP_PORT", p[6].ToString()), ("APB_METRICS_PORT", p[7].ToString()));
        Start("host-a", p[2], p[3], "gpu-host", seed);
        Start("host-b", p[4], p[5], "gpu-host", seed);

        var admin = $"127.0.0.1:{p[1]}";
        await Eventually("2 hosts registered", async () =>
        {
            try
            {
                await using var client = await AdminClient.ConnectAsync(admin, ct: ct);
                var hosts = await client.RunAsync("gpu list", [], ct);
                return hosts.ExitCode == 0 && hosts.Json!.AsArray().Count == 2;
            }
            catch (AdminConnectionException)
            {
                return false;
            }
        });

        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{p[6]}"), Timeout = Bound };
        var body = new Body("random:tiny:7", stream: true, max_tokens: 8,
        [
            new { role = "system", content = string.Join(' ', Enumerable.Repeat("The quick brown fox jumps over the lazy dog.", 20)) },
            new { role = "user", content = "What does the fox do?" },
        ]);
        var events = await HttpSse.PostAsync(http, body, ct);
        Assert.Equal("[DONE]", events[^1]);
        var finish = JsonNode.Parse(events[^2])!["choices"]![0]!["finish_reason"]!.GetValue<string>();
        Assert.Contains(finish, new[] { "length", "stop" });
        Assert.True(events.Count >= 3, string.Join("\n", events));

        // A lone user message is a short prompt: the real router runs it dense on one host, as the whole prompt and
        // nothing else (BOS and its bytes for this byte-level model), asked by the official openai client.
        const string lone = "Say something.";
        var single = await OpenAiNodeClient.RunAsync(http.BaseAddress!, new
        {
            op = "create", @params = new { model = "random:tiny:7", max_tokens = 4, messages = new object[] { new { role = "user", content = lone } } },
        });
        Assert.True(single["error"] is null, single.ToJsonString());
        var wholePrompt = ITokenCodec.For(ModelSpec.Parse("random:tiny:7", null)!).Encode(lone, addBos: true).Count;
        Assert.Equal(wholePrompt, single["usage"]!["prompt_tokens"]!.GetValue<int>());
        Assert.Equal(4, single["usage"]!["completion_tokens"]!.GetValue<int>());

        // A stop string taken from the middle of the (greedy, so repeatable) answer: the stream ends before it.
        var full = JsonNode.Parse(await (await http.PostAsJsonAsync("/v1/chat/completions", body with { stream = false, max_tokens = 16 }, ct)).Content.ReadAsStringAsync(ct))!;
        var answer = full["choices"]![0]!["message"]!["content"]!.GetValue<string>();
        Assert.True(answer.Length >= 6, answer);
        var stop = answer.Substring(answer.Length / 2, 3);
        var cut = answer[..answer.IndexOf(stop, StringComparison.Ordinal)];
        var stopped = await HttpSse.PostAsync(http, body with { max_tokens = 16, stop = stop }, ct);
        Assert.Equal(cut, HttpSse.Content(stopped));
        Assert.Equal("stop", JsonNode.Parse(stopped[^2])!["choices"]![0]!["finish_reason"]!.GetValue<string>());

        var bad = await http.PostAsJsonAsync("/v1/chat/completions", body with { stream = false, n = 2 }, ct);
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.Equal("invalid_request_error", JsonNode.Parse(await bad.Content.ReadAsStringAsync(ct))!["error"]!["type"]!.GetValue<string>());

        var metrics = await http.GetStringAsync($"http://localhost:{p[7]}/metrics", ct);
        Assert.Contains("apb_http_requests_total{route=\"chat\",status=\"200\"} 4", metrics);
        Assert.Contains("apb_http_requests_total{route=\"chat\",status=\"400\"} 1", metrics);
    }

    private sealed record Body(string model, bool stream, int max_tokens, object[] messages, string? stop = null, int? n = null);

    /// <summary>A node with the model and no ops file (APB_CONFIG unset).</summary>
    private void Start(string name, int port, int adminPort, string role, string seed, params (string Key, string Value)[] extra) =>
        _nodes.Start(name, BaseEnvironment(port, adminPort, role, seed), [("APB_MODEL", "random:tiny:7"), .. extra]);

    private Task Eventually(string what, Func<Task<bool>> condition) =>
        _nodes.Eventually(what, Bound, condition, poll: TimeSpan.FromMilliseconds(300));

    public void Dispose() => _nodes.Dispose();
}
