using System.Text.Json;
using ApbCluster.Contracts;
using ApbCluster.Http;
using ApbCluster.Runtime.Config;

namespace ApbCluster.Runtime.Tests.Http;

/// <summary>The chat request's kv and shadow_* extension fields, mapped onto SubmitQuery.KvStore.</summary>
public class KvStoreMappingTests
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
    public void WithoutTheFieldsTheRouterDecides() => Assert.Null(Map("").Query!.KvStore);

    [Theory]
    [InlineData(",'kv':'shadowkv','shadow_budget':1024", KvStoreKind.ShadowKv, 1024, null, null)]
    [InlineData(",'kv':'ShadowKV','shadow_rank':64,'shadow_outliers':0,'shadow_values':'host'", KvStoreKind.ShadowKv, null, 64, true)]
    [InlineData(",'kv':'full'", KvStoreKind.Full, null, null, null)]
    [InlineData(",'shadow_budget':4096", KvStoreKind.Default, 4096, null, null)]
    public void TheFieldsBecomeTheQuerysKvStore(string extra, KvStoreKind kind, int? budget, int? rank, bool? onHost)
    {
        var (query, error) = Map(extra);
        Assert.Null(error);
        var k = query!.KvStore!;
        Assert.Equal((kind, budget, rank, onHost), (k.Kind, k.Budget, k.Rank, k.ValuesOnHost));
    }

    [Theory]
    [InlineData(",'kv':'sparse'", "kv", "kv must be full or shadowkv")]
    [InlineData(",'kv':'shadowkv','shadow_chunk':0", "shadow_chunk", "shadow_chunk 0: must be positive")]
    [InlineData(",'kv':'shadowkv','shadow_local':-1", "shadow_local", "shadow_local -1: must be 0 or more")]
    [InlineData(",'kv':'shadowkv','shadow_values':'gpu'", "shadow_values", "shadow_values must be device or host")]
    [InlineData(",'kv':'full','shadow_rank':64", "shadow_rank", "shadow_rank applies with kv shadowkv")]
    public void BadFieldsAre400sNamingTheField(string extra, string param, string message)
    {
        var (query, error) = Map(extra);
        Assert.Null(query);
        Assert.Equal(400, error!.Status);
        Assert.Equal(param, error.Param);
        Assert.Contains(message, error.Message);
    }
}
