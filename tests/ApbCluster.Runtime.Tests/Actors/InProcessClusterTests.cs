using Akka.Actor;
using Akka.TestKit.Xunit;
using ApbCluster.Contracts;
using ApbCluster.Runtime.Actors;
using ApbCluster.Engine.DataPlane;
using ApbCluster.Engine;
using ApbCluster.Runtime.Tests.Engine;

namespace ApbCluster.Runtime.Tests.Actors;

/// <summary>Router + real GpuHost actors (real engines, TCP data plane) in one ActorSystem, messages serialized.</summary>
public sealed class InProcessClusterTests() : TestKit(ClusterTestConfig.Hocon)
{
    private (IActorRef Router, IActorRef[] Hosts, LlamaShardEngine[] Engines) Cluster(int hosts, TimeSpan layerDelay)
    {
        var spec = ModelSpec.Parse(InProcessReference.Model, null)!;
        var router = Sys.ActorOf(QueryRouter.Props(new RouterSettings { Codec = ITokenCodec.For(spec), Model = spec.Config() }));
        var engines = Enumerable.Range(0, hosts).Select(_ => new LlamaShardEngine(spec, "cpu", layerDelay)).ToArray();
        var actors = engines.Select((e, i) =>
        {
            var listener = new DataPlaneListener("127.0.0.1", "127.0.0.1", 0);
            Sys.RegisterOnTermination(listener.Dispose);
            return Sys.ActorOf(GpuHost.Props($"h{i}", e, new CollectiveFactory(listener, "cpu"), router, TimeSpan.FromMilliseconds(200)));
        }).ToArray();
        AwaitAssert(() =>
        {
            router.Tell(GetClusterStatus.Instance);
            Assert.Equal(hosts, ExpectMsg<ClusterStatus>().Hosts.Count);
        }, TimeSpan.FromSeconds(10));
        return (router, actors, engines);
    }

    private static SubmitQuery Query(string id, int maxNew = 4) =>
        new(id, QueryContext.FromText(InProcessReference.Context(4)), " Which box?", Contracts.GenerationOptions.Greedy(maxNew), AttentionMode.Apb, null);

    [Fact]
    public void Cancel_mid_prefill_frees_every_hosts_kv_and_the_next_query_completes()
    {
        var (router, _, engines) = Cluster(2, TimeSpan.FromMilliseconds(300));
        router.Tell(Query("q1"));
        ExpectMsg<QueryAccepted>();
        FishForMessage(m => m is PrefillProgress, TimeSpan.FromSeconds(20));
        router.Tell(new CancelQuery("q1"));
        FishForMessage(m => m is QueryCancelled, TimeSpan.FromSeconds(10));
        AwaitAssert(() => Assert.All(engines, e => Assert.Equal(0, e.KvBytes)), TimeSpan.FromSeconds(10));

        router.Tell(Query("q2"));
        var done = (QueryCompleted)FishForMessage(m => m is QueryCompleted or QueryFailed, TimeSpan.FromSeconds(60));
        Assert.Equal(4, done.GeneratedTokens);
        Assert.Equal(InProcessReference.Tokens(AttentionMode.Apb, 2, InProcessReference.Prompt(InProcessReference.Context(4), " Which box?"), 4).Length,
            done.GeneratedTokens);
    }

    [Fact]
    public void A_query_past_its_deadline_fails_and_the_hosts_abort()
    {
        var spec = ModelSpec.Parse(InProcessReference.Model, null)!;
        var router = Sys.ActorOf(QueryRouter.Props(new RouterSettings
        {
            Codec = ITokenCodec.For(spec), Model = spec.Config(), QueryTimeout = TimeSpan.FromSeconds(1),
        }));
        var engine = new LlamaShardEngine(spec, "cpu", TimeSpan.FromMilliseconds(800));
        var listener = new DataPlaneListener("127.0.0.1", "127.0.0.1", 0);
        Sys.RegisterOnTermination(listener.Dispose);
        Sys.ActorOf(GpuHost.Props("h0", engine, new CollectiveFactory(listener, "cpu"), router, TimeSpan.FromMilliseconds(200)));
        AwaitAssert(() =>
        {
            router.Tell(GetClusterStatus.Instance);
            Assert.Single(ExpectMsg<ClusterStatus>().Hosts);
        }, TimeSpan.FromSeconds(10));

        router.Tell(new SubmitQuery("slow", QueryContext.FromText("abc"), "?", Contracts.GenerationOptions.Greedy(2), AttentionMode.Dense, null));
        var failed = (QueryFailed)FishForMessage(m => m is QueryFailed, TimeSpan.FromSeconds(10));
        Assert.Contains("deadline", failed.Reason);
        AwaitAssert(() => Assert.Equal(0, engine.KvBytes), TimeSpan.FromSeconds(5));
    }
}
