using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Akka.Actor;
using ApbCluster.Http;
using ApbCluster.Runtime.Config;

namespace ApbCluster.Runtime.Tests.Http;

/// <summary>The HTTP layer with a real HttpClient against a test-only fake router (see its summary).</summary>
public sealed class HttpFrontDoorTests : Akka.TestKit.Xunit.TestKit
{
    private static readonly OpsSettings Limits = new("127.0.0.1", 0, "127.0.0.1", 0,
        MaxContextChars: 1000, MaxNewTokens: 64, MaxConcurrentQueries: 1, RequestTimeout: TimeSpan.FromSeconds(2));

    private HttpFrontDoor _door = null!;
    private readonly HttpClient _http = new();

    public override async ValueTask InitializeAsync()
    {
        await base.InitializeAsync();
        var router = Sys.ActorOf(Props.Create(() => new FakeRouterForHttpMappingTests()));
        _door = await ApbCluster.Node.FrontDoorWiring.StartAsync(Sys, router, Limits);
        _http.BaseAddress = _door.Address;
    }

    public override async ValueTask DisposeAsync()
    {
        await _door.DisposeAsync();
        _http.Dispose();
        await base.DisposeAsync();
    }

    private static object Chat(string question, bool stream = false, int? maxTokens = null, string context = "a long document") => new
    {
        model = "random:tiny:7",
        stream,
        max_tokens = maxTokens,
        messages = new object[] { new { role = "system", content = context }, new { role = "user", content = question } },
    };

    private async Task<(HttpStatusCode Status, JsonNode Error)> PostError(object body)
    {
        var response = await _http.PostAsJsonAsync("/v1/chat/completions", body, TestContext.Current.CancellationToken);
        var json = JsonNode.Parse(await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken))!;
        return (response.StatusCode, json["error"]!);
    }

    [Fact]
    public async Task Bad_requests_get_openai_style_errors()
    {
        var ct = TestContext.Current.CancellationToken;
        var raw = await _http.PostAsync("/v1/chat/completions", new StringContent("{not json", Encoding.UTF8, "application/json"), ct);
        Assert.Equal(HttpStatusCode.BadRequest, raw.StatusCode);
        var body = JsonNode.Parse(await raw.Content.ReadAsStringAsync(ct))!["error"]!;
        Assert.Equal("invalid_request_error", body["type"]!.GetValue<string>());
        Assert.True(body.AsObject().ContainsKey("param") && body.AsObject().ContainsKey("code"));

        var (status, error) = await PostError(new { messages = Array.Empty<object>() });
        Assert.Equal((HttpStatusCode.BadRequest, "messages"), (status, error["param"]!.GetValue<string>()));
        (status, error) = await PostError(new { messages = new object[] { new { role = "wizard", content = "x" } } });
        Assert.Equal(HttpStatusCode.BadRequest, status);
        (status, error) = await PostError(Chat("q", maxTokens: 65));
        Assert.Equal((HttpStatusCode.BadRequest, "max_tokens"), (status, error["param"]!.GetValue<string>()));
        (status, error) = await PostError(Chat("q", context: new string('x', 1001)));
        Assert.Equal((HttpStatusCode.RequestEntityTooLarge, "context_length_exceeded"), (status, error["code"]!.GetValue<string>()));
        (status, error) = await PostError(new { messages = new object[] { new { role = "user", content = "q" } }, context = "doc", mode = "telepathy" });
        Assert.Equal((HttpStatusCode.BadRequest, "mode"), (status, error["param"]!.GetValue<string>()));

        var missing = await _http.GetAsync("/v2/nothing", ct);
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        Assert.Equal("not_found", JsonNode.Parse(await missing.Content.ReadAsStringAsync(ct))!["error"]!["code"]!.GetValue<string>());
    }

    [Fact]
    public async Task Bodies_that_are_not_utf8_or_not_a_chat_request_say_where()
    {
        var ct = TestContext.Current.CancellationToken;
        var latin1 = Encoding.Latin1.GetBytes("{\"messages\":[{\"role\":\"user\",\"content\":\"caf\u00e9\"}]}");
        var raw = await _http.PostAsync("/v1/chat/completions", new ByteArrayContent(latin1) { Headers = { { "Content-Type", "application/json" } } }, ct);
        Assert.Equal(HttpStatusCode.BadRequest, raw.StatusCode);
        var error = JsonNode.Parse(await raw.Content.ReadAsStringAsync(ct))!["error"]!;
        Assert.Equal(("invalid_request_error", "invalid_encoding"), (error["type"]!.GetValue<string>(), error["code"]!.GetValue<string>()));
        Assert.Contains("UTF-8", error["message"]!.GetValue<string>());
        var requestId = Assert.Single(raw.Headers.GetValues("x-request-id"));
        Assert.Contains($"(request id {requestId})", error["message"]!.GetValue<string>());

        // A wrong type names the JSON path, not the .NET type it failed to become.
        (var status, error) = await PostError(new { messages = "not an array" });
        Assert.Equal((HttpStatusCode.BadRequest, "messages"), (status, error["param"]!.GetValue<string>()));
        Assert.Contains("$.messages", error["message"]!.GetValue<string>());
        Assert.DoesNotContain("System.", error["message"]!.GetValue<string>());
        Assert.DoesNotContain("ApbCluster", error["message"]!.GetValue<string>());
    }

    [Fact]
    public async Task Router_refusals_map_to_status_codes()
    {
        Assert.Equal(HttpStatusCode.TooManyRequests, (await PostError(Chat("busy"))).Status);
        var (status, error) = await PostError(Chat("host dies"));
        Assert.Equal((HttpStatusCode.ServiceUnavailable, "host_failed"), (status, error["code"]!.GetValue<string>()));
        (status, error) = await PostError(Chat("no hosts"));
        Assert.Equal((HttpStatusCode.ServiceUnavailable, "no_hosts"), (status, error["code"]!.GetValue<string>()));
        (status, error) = await PostError(Chat("too much kv"));
        Assert.Equal((HttpStatusCode.RequestEntityTooLarge, "context_length_exceeded"), (status, error["code"]!.GetValue<string>()));
        Assert.Contains("4.0 MiB of KV on host h0", error["message"]!.GetValue<string>());
        (status, error) = await PostError(Chat("hang"));
        Assert.Equal((HttpStatusCode.GatewayTimeout, "deadline_exceeded"), (status, error["code"]!.GetValue<string>()));
        // The hung query was cancelled at the router so its hosts free their KV.
        AwaitCondition(() => !FakeRouterForHttpMappingTests.Cancelled.IsEmpty, TimeSpan.FromSeconds(3));
    }

    [Fact]
    public async Task Concurrency_limit_refuses_with_429()
    {
        var ct = TestContext.Current.CancellationToken;
        var hanging = _http.PostAsJsonAsync("/v1/chat/completions", Chat("hang"), ct);
        await Task.Delay(300, ct);
        var (status, error) = await PostError(Chat("hello"));
        Assert.Equal((HttpStatusCode.TooManyRequests, "too_many_requests"), (status, error["code"]!.GetValue<string>()));
        Assert.Equal(HttpStatusCode.GatewayTimeout, (await hanging).StatusCode);
    }

    [Fact]
    public async Task Non_streamed_completion_has_answer_and_usage()
    {
        var ct = TestContext.Current.CancellationToken;
        var response = await _http.PostAsJsonAsync("/v1/chat/completions", Chat("hello", maxTokens: 7), ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var json = JsonNode.Parse(await response.Content.ReadAsStringAsync(ct))!;
        Assert.Equal("chat.completion", json["object"]!.GetValue<string>());
        Assert.Equal("Hello, world", json["choices"]![0]!["message"]!["content"]!.GetValue<string>());
        Assert.Equal("length", json["choices"]![0]!["finish_reason"]!.GetValue<string>());
        Assert.Equal(7, json["usage"]!["completion_tokens"]!.GetValue<int>());
    }

    [Fact]
    public async Task Streamed_completion_sends_sse_chunks_then_done()
    {
        var ct = TestContext.Current.CancellationToken;
        var events = await HttpSse.PostAsync(_http, Chat("hello", stream: true), ct);
        Assert.Equal("Hello, world", HttpSse.Content(events));
        Assert.Equal("[DONE]", events[^1]);
        Assert.Equal("length", JsonNode.Parse(events[^2])!["choices"]![0]!["finish_reason"]!.GetValue<string>());
    }

    [Fact]
    public async Task Models_lists_what_the_hosts_serve()
    {
        var json = JsonNode.Parse(await _http.GetStringAsync("/v1/models", TestContext.Current.CancellationToken))!;
        Assert.Equal("random:tiny:7", json["data"]![0]!["id"]!.GetValue<string>());
    }
}
