using System.Text.Json;
using ApbCluster.Contracts;
using ApbCluster.Http;
using ApbCluster.Runtime.Config;

namespace ApbCluster.Runtime.Tests.Http;

/// <summary>The chat request's prefill_attention and criti_* extension fields, mapped onto SubmitQuery.PrefillAttention.</summary>
public class PrefillAttentionMappingTests
{
    private static readonly HttpSettings Limits =
        ApbCluster.Node.FrontDoorWiring.Settings(OpsSettings.Read(Akka.Configuration.ConfigurationFactory.ParseString(NodeConfig.ReadBaseline())));

    private static (SubmitQuery? Query, OpenAiError? Error) Map(string extra)
    {
        // The cases write JSON with ' for " (readable attributes).
        var json = $$"""{"messages":[{"role":"system","content":"a long document"},{"role":"user","content":"q?"}]{{extra.Replace('\'', '"')}}}""";
        var (query, _, error) = ChatRequestMapper.Map(JsonSerializer.Deserialize<ChatCompletionRequest>(json), "id-1", Limits);
        return (query, error);
    }

    [Fact]
    public void WithoutTheFieldsTheRouterDecides() => Assert.Null(Map("").Query!.PrefillAttention);

    [Theory]
    [InlineData(",'prefill_attention':'critiprefill','criti_budget':1024", PrefillAttentionKind.CritiPrefill, 1024, null)]
    [InlineData(",'prefill_attention':'CritiPrefill','criti_segment':256,'criti_threshold':0", PrefillAttentionKind.CritiPrefill, null, 256)]
    [InlineData(",'prefill_attention':'full'", PrefillAttentionKind.Full, null, null)]
    [InlineData(",'criti_budget':4096", PrefillAttentionKind.Default, 4096, null)]
    public void TheFieldsBecomeTheQuerysPrefillAttention(string extra, PrefillAttentionKind kind, int? budget, int? segment)
    {
        var (query, error) = Map(extra);
        Assert.Null(error);
        var p = query!.PrefillAttention!;
        Assert.Equal((kind, budget, segment), (p.Kind, p.Budget, p.Segment));
    }

    [Theory]
    [InlineData(",'prefill_attention':'sparse'", "prefill_attention", "prefill_attention must be full or critiprefill")]
    [InlineData(",'prefill_attention':'critiprefill','criti_block':0", "criti_block", "criti_block 0: must be positive")]
    [InlineData(",'prefill_attention':'critiprefill','criti_threshold':-1", "criti_threshold", "criti_threshold -1: must be 0 or more")]
    [InlineData(",'prefill_attention':'full','criti_budget':64", "criti_budget", "criti_budget applies with prefill_attention critiprefill")]
    [InlineData(",'prefill_attention':'critiprefill','mode':'ulysses'", "prefill_attention", "runs with mode dense, apb or star, not ulysses")]
    public void BadFieldsAre400sNamingTheField(string extra, string param, string message)
    {
        var (query, error) = Map(extra);
        Assert.Null(query);
        Assert.Equal(400, error!.Status);
        Assert.Equal(param, error.Param);
        Assert.Contains(message, error.Message);
    }
}
