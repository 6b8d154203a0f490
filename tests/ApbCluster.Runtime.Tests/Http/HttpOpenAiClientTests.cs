using System.Text.Json.Nodes;
using Akka.Actor;
using ApbCluster.Http;
using ApbCluster.Runtime.Config;

namespace ApbCluster.Runtime.Tests.Http;

/// <summary>
/// The front door as the official openai client sees it (Node, over loopback), in front of the
/// test-only fake router: usage in streams, model ids, refused parameters, errors with request ids.
/// </summary>
public sealed class HttpOpenAiClientTests : Akka.TestKit.Xunit.TestKit
{
    private static readonly OpsSettings Limits = new("127.0.0.1", 0, "127.0.0.1", 0,
        MaxContextChars: 1000, MaxNewTokens: 64, MaxConcurrentQueries: 4, RequestTimeout: TimeSpan.FromSeconds(5));

    private HttpFrontDoor _door = null!;

    public override async ValueTask InitializeAsync()
    {
        await base.InitializeAsync();
        var router = Sys.ActorOf(Props.Create(() => new FakeRouterForHttpMappingTests()));
        _door = await ApbCluster.Node.FrontDoorWiring.StartAsync(Sys, router, Limits);
    }

    public override async ValueTask DisposeAsync()
    {
        await _door.DisposeAsync();
        await base.DisposeAsync();
    }

    private static object Chat(string question, object? extra = null, string model = "random:tiny:7")
    {
        var body = new JsonObject
        {
            ["model"] = model,
            ["max_tokens"] = 7,
            ["messages"] = new JsonArray(
                new JsonObject { ["role"] = "system", ["content"] = "a long document" },
                new JsonObject { ["role"] = "user", ["content"] = question }),
        };
        if (extra is not null)
            foreach (var (k, v) in JsonNode.Parse(System.Text.Json.JsonSerializer.Serialize(extra))!.AsObject())
                body[k] = v?.DeepClone();
        return body;
    }

    private Task<JsonNode> Client(object plan) => OpenAiNodeClient.RunAsync(_door.Address, plan);

    [Fact]
    public async Task Stream_with_include_usage_ends_with_a_usage_chunk()
    {
        var withUsage = await Client(new { op = "stream", @params = Chat("hello", new { stream_options = new { include_usage = true } }) });
        Assert.Equal("Hello, world", withUsage["content"]!.GetValue<string>());
        Assert.Equal("length", withUsage["finish_reason"]!.GetValue<string>());
        Assert.Equal(7, withUsage["usage"]!["completion_tokens"]!.GetValue<int>());
        Assert.Equal(15 + 7, withUsage["usage"]!["total_tokens"]!.GetValue<int>());
        Assert.Equal(1, withUsage["empty_choice_chunks"]!.GetValue<int>());

        var without = await Client(new { op = "stream", @params = Chat("hello") });
        Assert.Null(without["usage"]);
        Assert.Equal(0, without["empty_choice_chunks"]!.GetValue<int>());
    }

    [Fact]
    public async Task Models_list_and_retrieve_and_unknown_models_are_404()
    {
        Assert.Equal(["random:tiny:7"], (await Client(new { op = "list" }))["ids"]!.AsArray().Select(i => i!.GetValue<string>()));
        Assert.Equal("random:tiny:7", (await Client(new { op = "retrieve", id = "random:tiny:7" }))["id"]!.GetValue<string>());

        var missing = (await Client(new { op = "retrieve", id = "gpt-4o" }))["error"]!;
        Assert.Equal((404, "model_not_found"), (missing["status"]!.GetValue<int>(), missing["code"]!.GetValue<string>()));

        var chat = (await Client(new { op = "create", @params = Chat("hello", model: "gpt-4o") }))["error"]!;
        Assert.Equal((404, "model_not_found", "model"), (chat["status"]!.GetValue<int>(), chat["code"]!.GetValue<string>(), chat["param"]!.GetValue<string>()));
        Assert.Contains("random:tiny:7", chat["message"]!.GetValue<string>());

        // "apb-cluster" always names whatever the cluster serves.
        Assert.Equal("Hello, world", (await Client(new { op = "create", @params = Chat("hello", model: "apb-cluster") }))["content"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("n", "{\"n\":2}")]
    [InlineData("logprobs", "{\"logprobs\":true}")]
    [InlineData("tools", "{\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{}}}]}")]
    [InlineData("response_format", "{\"response_format\":{\"type\":\"json_object\"}}")]
    [InlineData("presence_penalty", "{\"presence_penalty\":0.5}")]
    [InlineData("logit_bias", "{\"logit_bias\":{\"42\":10}}")]
    public async Task Parameters_we_do_not_implement_are_refused(string param, string extra)
    {
        var error = (await Client(new { op = "create", @params = Chat("hello", JsonNode.Parse(extra)) }))["error"]!;
        Assert.Equal((400, param, "unsupported_parameter"), (error["status"]!.GetValue<int>(), error["param"]!.GetValue<string>(), error["code"]!.GetValue<string>()));
    }

    [Fact]
    public async Task No_op_values_of_those_parameters_pass()
    {
        var ok = await Client(new { op = "create", @params = Chat("hello", new { n = 1, logprobs = false, presence_penalty = 0, response_format = new { type = "text" } }) });
        Assert.Equal("Hello, world", ok["content"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_single_user_message_runs_dense_as_the_whole_prompt()
    {
        var body = new { model = "random:tiny:7", messages = new[] { new { role = "user", content = "What is 2+2?" } } };
        var answer = await Client(new { op = "create", @params = body });
        // No document: the router gets an empty context and the prompt as the question (its short-prompt path).
        Assert.Equal("dense: |What is 2+2?", answer["content"]!.GetValue<string>());
        Assert.Equal("stop", answer["finish_reason"]!.GetValue<string>());

        var splitting = new { model = "random:tiny:7", mode = "apb", messages = new[] { new { role = "user", content = "What is 2+2?" } } };
        var error = (await Client(new { op = "create", @params = splitting }))["error"]!;
        Assert.Equal((400, "mode"), (error["status"]!.GetValue<int>(), error["param"]!.GetValue<string>()));
    }

    [Fact]
    public async Task Internal_failures_say_what_to_quote_not_the_stack()
    {
        var error = (await Client(new { op = "create", @params = Chat("crash") }))["error"]!;
        var message = error["message"]!.GetValue<string>();
        var requestId = error["request_id"]!.GetValue<string>();
        Assert.Equal(500, error["status"]!.GetValue<int>());
        Assert.StartsWith("req-", requestId);
        Assert.Contains($"(request id {requestId})", message);
        Assert.DoesNotContain("Exception", message);
        Assert.DoesNotContain("/opt/apb", message);
        Assert.DoesNotContain(" at ", message);
    }
}
