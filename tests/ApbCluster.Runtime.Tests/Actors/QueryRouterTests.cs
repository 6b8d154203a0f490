using Akka.Actor;
using Akka.TestKit.Xunit;
using ApbCluster.Contracts;
using ApbCluster.Runtime.Actors;

namespace ApbCluster.Runtime.Tests.Actors;

public sealed class QueryRouterTests() : TestKit(ClusterTestConfig.Hocon)
{
    private static RegisterHost Registration(string id, IActorRef host, long used = 100) =>
        new(id, host, "cpu", used, 1000, "tiny", HostState.Ready, 0, "127.0.0.1:1");

    [Fact]
    public void Registered_hosts_appear_in_status_and_get_an_acknowledgement()
    {
        var router = Sys.ActorOf(QueryRouter.Props());
        var host = CreateTestProbe();
        router.Tell(Registration("h0", host.Ref), host.Ref);
        Assert.Equal("h0", host.ExpectMsg<HostRegistered>().HostId);

        router.Tell(GetClusterStatus.Instance);
        var status = ExpectMsg<ClusterStatus>();
        var only = Assert.Single(status.Hosts);
        Assert.Equal(("h0", "cpu", 100L, 1000L, "tiny", HostState.Ready), (only.HostId, only.Device, only.MemoryUsedBytes, only.MemoryTotalBytes, only.Model, only.State));
    }

    [Fact]
    public void Re_registration_refreshes_figures_without_duplicates()
    {
        var router = Sys.ActorOf(QueryRouter.Props());
        var host = CreateTestProbe();
        router.Tell(Registration("h0", host.Ref, used: 100), host.Ref);
        router.Tell(Registration("h0", host.Ref, used: 555), host.Ref);
        host.ExpectMsg<HostRegistered>();
        host.ExpectMsg<HostRegistered>();
        router.Tell(GetClusterStatus.Instance);
        Assert.Equal(555, Assert.Single(ExpectMsg<ClusterStatus>().Hosts).MemoryUsedBytes);
    }

    [Fact]
    public void Hosts_are_listed_in_a_stable_ring_order()
    {
        var router = Sys.ActorOf(QueryRouter.Props());
        foreach (var id in new[] { "h2", "h0", "h1" })
            router.Tell(Registration(id, CreateTestProbe().Ref));
        ReceiveN(3);
        router.Tell(GetClusterStatus.Instance);
        Assert.Equal(["h0", "h1", "h2"], ExpectMsg<ClusterStatus>().Hosts.Select(h => h.HostId));
    }

    [Fact]
    public void A_host_whose_actor_dies_is_removed()
    {
        var router = Sys.ActorOf(QueryRouter.Props());
        var doomed = CreateTestProbe();
        var survivor = CreateTestProbe();
        router.Tell(Registration("doomed", doomed.Ref), doomed.Ref);
        router.Tell(Registration("survivor", survivor.Ref), survivor.Ref);
        doomed.ExpectMsg<HostRegistered>();
        survivor.ExpectMsg<HostRegistered>();

        Sys.Stop(doomed.Ref);
        AwaitAssert(() =>
        {
            router.Tell(GetClusterStatus.Instance);
            Assert.Equal(["survivor"], ExpectMsg<ClusterStatus>().Hosts.Select(h => h.HostId));
        }, TimeSpan.FromSeconds(5));
    }

    [Fact]
    public void A_fresh_router_holds_queries_for_its_host_wait_then_refuses_them_with_a_clear_reason()
    {
        var router = Sys.ActorOf(QueryRouter.Props(new RouterSettings { HostWait = TimeSpan.FromMilliseconds(500) }));
        router.Tell(new SubmitQuery("q1", QueryContext.FromText("ctx"), "q?", GenerationOptions.Greedy(4), AttentionMode.Apb, null));
        ExpectNoMsg(TimeSpan.FromMilliseconds(200)); // hosts re-register after a hand-over: not refused at once
        var failed = ExpectMsg<QueryFailed>(TimeSpan.FromSeconds(5));
        Assert.Equal("q1", failed.QueryId);
        Assert.Contains("no GPU hosts are registered", failed.Reason);
    }
}
