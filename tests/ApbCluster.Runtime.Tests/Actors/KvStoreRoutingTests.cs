using Akka.Actor;
using Akka.TestKit;
using Akka.TestKit.Xunit;
using ApbCluster.Contracts;
using ApbCluster.Model.Config;
using ApbCluster.Model.KvStores;
using ApbCluster.Runtime.Actors;
using ApbCluster.Runtime.Config;
using ApbCluster.Engine;

namespace ApbCluster.Runtime.Tests.Actors;

/// <summary>A query's decode KV store: the router fills it from its settings, hands it to every host, refuses bad ones.</summary>
public sealed class KvStoreRoutingTests() : TestKit(ClusterTestConfig.Hocon)
{
    private static readonly ModelConfig Tiny = ModelShapes.Get("tiny");

    private static RouterSettings Settings(bool shadowByDefault = false) => new()
    {
        Codec = new ByteTokenCodec(Tiny), Model = Tiny, ShadowKvByDefault = shadowByDefault,
        ShadowKv = new ShadowKvOptions { Rank = 32, Chunk = 4, Budget = 64, Outliers = 2, Local = 1 },
    };

    private static SubmitQuery Query(string id, KvStoreOptions? kv, AttentionMode mode = AttentionMode.Apb) =>
        new(id, QueryContext.FromText("The quick brown fox jumps over the lazy dog."), "Who jumps?", Contracts.GenerationOptions.Greedy(2), mode, null,
            KvStore: kv);

    private (IActorRef Router, TestProbe[] Hosts) RouterWithHosts(int hosts, RouterSettings settings)
    {
        var router = Sys.ActorOf(QueryRouter.Props(settings));
        var probes = Enumerable.Range(0, hosts).Select(_ => CreateTestProbe()).ToArray();
        for (int i = 0; i < hosts; i++)
        {
            router.Tell(new RegisterHost($"h{i}", probes[i].Ref, "cpu", 1L << 30, 64L << 30, "random:tiny:7", HostState.Ready, 0, $"127.0.0.1:{5000 + i}")
                { HostMemoryTotalBytes = 64L << 30 }, probes[i].Ref); // room for values kept in host memory
            probes[i].ExpectMsg<HostRegistered>();
        }
        return (router, probes);
    }

    [Theory]
    [InlineData(false, null, null)] // nothing asked, router default full
    [InlineData(true, null, "32/4/64/2/1/device")] // router default shadowkv, its parameters
    [InlineData(false, "shadow:512", "32/4/512/2/1/host")] // the query's budget and placement, the router's other parameters
    [InlineData(true, "full", null)] // the query opts out
    public void EveryHostGetsTheResolvedKvStore(bool shadowByDefault, string? asked, string? expected)
    {
        var kv = asked switch
        {
            null => null,
            "full" => new KvStoreOptions(KvStoreKind.Full),
            _ => new KvStoreOptions(KvStoreKind.ShadowKv, Budget: int.Parse(asked["shadow:".Length..]), ValuesOnHost: true),
        };
        var (router, hosts) = RouterWithHosts(2, Settings(shadowByDefault));
        router.Tell(Query("q1", kv));
        ExpectMsg<QueryAccepted>();
        foreach (var run in hosts.Select(h => h.ExpectMsg<RunShard>()))
        {
            var o = ShadowKvWire.FromWire(run.Work.KvStore);
            Assert.Equal(expected, o is null ? null : $"{o.Rank}/{o.Chunk}/{o.Budget}/{o.Outliers}/{o.Local}/{o.Values.ToString().ToLowerInvariant()}");
        }
    }

    [Theory]
    [InlineData(102, null, "shadow-budget 102: must be a multiple of shadow-chunk (4)")]
    [InlineData(null, 0, "shadow-rank 0: must be positive")]
    public void BadShadowKvParametersFailTheQueryWithTheReason(int? budget, int? rank, string reason)
    {
        var (router, hosts) = RouterWithHosts(1, Settings());
        router.Tell(Query("q1", new KvStoreOptions(KvStoreKind.ShadowKv, Rank: rank, Budget: budget)));
        var failed = ExpectMsg<QueryFailed>();
        Assert.Contains(reason, failed.Reason);
        Assert.Null(failed.FailingHost);
        hosts[0].ExpectNoMsg(TimeSpan.FromMilliseconds(200));
    }

    [Fact]
    public void AnUnknownKindFailsTheQuery()
    {
        var (router, _) = RouterWithHosts(1, Settings());
        router.Tell(Query("q1", new KvStoreOptions((KvStoreKind)9)));
        Assert.Contains("unknown KV store 9", ExpectMsg<QueryFailed>().Reason);
    }

    [Theory]
    [InlineData("apb.router.kv = sparse", "apb.router.kv = 'sparse': expected full or shadowkv.")]
    [InlineData("apb.router.shadow-budget = 100", "apb.router.shadow-budget 100: must be a multiple of apb.router.shadow-chunk (8).")]
    [InlineData("apb.router.shadow-local = -1", "apb.router.shadow-local -1: must be 0 or more.")]
    [InlineData("apb.router.shadow-values = gpu", "apb.router.shadow-values = 'gpu': expected device or host.")]
    public void BadNodeDefaultsAreConfigurationErrors(string hocon, string message)
    {
        var config = Akka.Configuration.ConfigurationFactory.ParseString(hocon);
        var e = Assert.Throws<NodeConfigException>(() => RouterSettings.From(config, null));
        Assert.Equal(message, e.Message);
    }

    [Fact]
    public void TheBaselineDefaultIsFullWithTheReferenceParameters()
    {
        var s = RouterSettings.From(Akka.Configuration.ConfigurationFactory.ParseString(NodeConfig.ReadBaseline()), null);
        Assert.False(s.ShadowKvByDefault);
        Assert.Equal(new ShadowKvOptions(), s.ShadowKv);
    }
}
