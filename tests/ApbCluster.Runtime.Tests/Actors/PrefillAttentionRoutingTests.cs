using Akka.Actor;
using Akka.TestKit;
using Akka.TestKit.Xunit;
using ApbCluster.Contracts;
using ApbCluster.Model.Config;
using ApbCluster.Parallel.Kernels;
using ApbCluster.Runtime.Actors;
using ApbCluster.Runtime.Config;
using ApbCluster.Engine;

namespace ApbCluster.Runtime.Tests.Actors;

/// <summary>A query's prefill attention: the router fills it from its settings, hands it to every host, refuses bad ones.</summary>
public sealed class PrefillAttentionRoutingTests() : TestKit(ClusterTestConfig.Hocon)
{
    private static readonly ModelConfig Tiny = ModelShapes.Get("tiny");

    private static RouterSettings Settings(bool critiByDefault = false) => new()
    {
        Codec = new ByteTokenCodec(Tiny), Model = Tiny, CritiPrefillByDefault = critiByDefault,
        CritiPrefill = new CritiPrefillOptions { Budget = 64, Segment = 32, Block = 8, Threshold = 128 },
    };

    private static SubmitQuery Query(string id, PrefillAttentionOptions? attention, AttentionMode mode = AttentionMode.Apb) =>
        new(id, QueryContext.FromText("The quick brown fox jumps over the lazy dog."), "Who jumps?", Contracts.GenerationOptions.Greedy(2), mode, null,
            PrefillAttention: attention);

    private (IActorRef Router, TestProbe[] Hosts) RouterWithHosts(int hosts, RouterSettings settings)
    {
        var router = Sys.ActorOf(QueryRouter.Props(settings));
        var probes = Enumerable.Range(0, hosts).Select(_ => CreateTestProbe()).ToArray();
        for (int i = 0; i < hosts; i++)
        {
            router.Tell(new RegisterHost($"h{i}", probes[i].Ref, "cpu", 1L << 30, 64L << 30, "random:tiny:7", HostState.Ready, 0, $"127.0.0.1:{5000 + i}"), probes[i].Ref);
            probes[i].ExpectMsg<HostRegistered>();
        }
        return (router, probes);
    }

    [Theory]
    [InlineData(false, null, null)] // nothing asked, router default full
    [InlineData(true, null, "64/32/8/128")] // router default critiprefill, its parameters
    [InlineData(false, "criti:1024", "1024/32/8/128")] // the query's budget, the router's other parameters
    [InlineData(true, "full", null)] // the query opts out
    public void EveryHostGetsTheResolvedPrefillAttention(bool critiByDefault, string? asked, string? expected)
    {
        var attention = asked switch
        {
            null => null,
            "full" => new PrefillAttentionOptions(PrefillAttentionKind.Full),
            _ => new PrefillAttentionOptions(PrefillAttentionKind.CritiPrefill, Budget: int.Parse(asked["criti:".Length..])),
        };
        var (router, hosts) = RouterWithHosts(2, Settings(critiByDefault));
        router.Tell(Query("q1", attention));
        ExpectMsg<QueryAccepted>();
        foreach (var run in hosts.Select(h => h.ExpectMsg<RunShard>()))
        {
            var p = run.Work.PrefillAttention;
            Assert.Equal(expected, p is null ? null : $"{p.Budget}/{p.Segment}/{p.Block}/{p.Threshold}");
            if (p is not null) Assert.Equal(PrefillAttentionKind.CritiPrefill, p.Kind);
        }
    }

    [Theory]
    [InlineData(100, null, AttentionMode.Apb, "criti-budget 100: must be a multiple of criti-block (8)")]
    [InlineData(null, 0, AttentionMode.Dense, "criti-segment 0: must be positive")]
    [InlineData(null, null, AttentionMode.Ring, "prefill attention critiprefill runs with dense, apb and star, not ring")]
    public void BadPrefillAttentionFailsTheQueryWithTheReason(int? budget, int? segment, AttentionMode mode, string reason)
    {
        var (router, hosts) = RouterWithHosts(1, Settings());
        router.Tell(Query("q1", new PrefillAttentionOptions(PrefillAttentionKind.CritiPrefill, budget, segment), mode));
        var failed = ExpectMsg<QueryFailed>();
        Assert.Contains(reason, failed.Reason);
        Assert.Null(failed.FailingHost);
        hosts[0].ExpectNoMsg(TimeSpan.FromMilliseconds(200));
    }

    [Fact]
    public void AnUnknownKindFailsTheQuery()
    {
        var (router, _) = RouterWithHosts(1, Settings());
        router.Tell(Query("q1", new PrefillAttentionOptions((PrefillAttentionKind)9)));
        Assert.Contains("unknown prefill attention 9", ExpectMsg<QueryFailed>().Reason);
    }

    [Theory]
    [InlineData("apb.router.prefill-attention = sparse", "apb.router.prefill-attention = 'sparse': expected full or critiprefill.")]
    [InlineData("apb.router.criti-segment = 100", "apb.router.criti-segment 100: must be a multiple of apb.router.criti-block (32).")]
    [InlineData("apb.router.criti-block = 0", "apb.router.criti-block 0: must be positive.")]
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
        Assert.False(s.CritiPrefillByDefault);
        Assert.Equal(new CritiPrefillOptions(), s.CritiPrefill);
    }
}
