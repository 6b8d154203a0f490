using Akka.TestKit.Xunit;
using ApbCluster.Contracts;
using ApbCluster.Runtime.Actors;

namespace ApbCluster.Runtime.Tests.Actors;

/// <summary>The router's ring bookkeeping: exact membership (order, actor incarnation, device) and invalidation.</summary>
public sealed class NcclRingTableTests() : TestKit(ClusterTestConfig.Hocon)
{
    private RegisterHost Host(string id, string device = "cuda:0", Akka.Actor.IActorRef? actor = null) =>
        new(id, actor ?? CreateTestProbe().Ref, device, 1, 2, "random:tiny:7", HostState.Ready, 0, "127.0.0.1:1");

    [Fact]
    public void A_ring_is_found_only_for_the_same_hosts_in_the_same_order_with_the_same_actors_and_devices()
    {
        var a = Host("a");
        var b = Host("b");
        var table = new NcclRingTable();
        Assert.Null(table.Find([a, b]));
        table.Formed(new NcclRingTable.Ring("r1", [a, b], [1]));
        Assert.Equal("r1", table.Find([a, b])!.RingId);
        Assert.Null(table.Find([b, a]));
        Assert.Null(table.Find([a]));
        Assert.Null(table.Find([a, b with { Host = CreateTestProbe().Ref }])); // b re-created: a new incarnation
        Assert.Null(table.Find([a, b with { Device = "cuda:1" }]));
    }

    [Fact]
    public void A_new_ring_displaces_rings_sharing_a_host_and_failures_or_host_changes_give_rings_up()
    {
        var (a, b, c, d) = (Host("a"), Host("b"), Host("c"), Host("d"));
        var table = new NcclRingTable();
        table.Formed(new NcclRingTable.Ring("ab", [a, b], [1]));
        table.Formed(new NcclRingTable.Ring("cd", [c, d], [2]));
        var displaced = table.Formed(new NcclRingTable.Ring("bc", [b, c], [3]));
        Assert.Equal(["ab", "cd"], displaced.Select(r => r.RingId).Order());
        Assert.Equal(1, table.Count);

        Assert.Null(table.Broken("ab"));
        Assert.Equal("bc", table.Broken("bc")!.RingId);
        Assert.Equal(0, table.Count);

        table.Formed(new NcclRingTable.Ring("ab", [a, b], [1]));
        table.Formed(new NcclRingTable.Ring("cd", [c, d], [2]));
        Assert.Equal(["cd"], table.HostsChanged(["d"]).Select(r => r.RingId));
        Assert.Equal("ab", table.Find([a, b])!.RingId);
        Assert.Empty(table.HostsChanged(["zz"]));
    }
}
