using Akka.TestKit.Xunit;
using ApbCluster.Contracts;
using ApbCluster.Runtime.Ops;

namespace ApbCluster.Runtime.Tests.Ops;

public sealed class RouterOpsTests : TestKit
{
    private static SubmitQuery Query(string id) =>
        new(id, QueryContext.FromText("ctx"), "q?", GenerationOptions.Greedy(4), AttentionMode.Apb, null);

    [Fact]
    public void Drain_only_known_hosts_and_undrain_again()
    {
        var ops = new RouterOps();
        Assert.Equal(new HostDrainChanged("h9", false, false), ops.Drain("h9", draining: true, known: false));
        Assert.False(ops.IsDrained("h9"));
        Assert.Equal(new HostDrainChanged("h0", true, true), ops.Drain("h0", draining: true, known: true));
        Assert.True(ops.IsDrained("h0"));
        ops.Drain("h0", draining: false, known: true);
        Assert.False(ops.IsDrained("h0"));
    }

    [Fact]
    public void List_follows_phases_and_forgets_finished_queries()
    {
        var ops = new RouterOps();
        ops.Submitted(Query("a"));
        ops.Submitted(Query("b"));
        Assert.Equal(["queued", "queued"], ops.List().Queries.Select(q => q.Phase));
        ops.Observe(new QueryAccepted("a", new QueryPlanSummary(["h0", "h1"], [10, 10], 4, 2)));
        ops.Observe(new TokenChunk("a", 0, [1, 2], "hi"));
        var a = ops.List().Queries.Single(q => q.QueryId == "a");
        Assert.Equal(("decode", 2), (a.Phase, a.GeneratedTokens));
        Assert.Equal(["h0", "h1"], a.Hosts);
        ops.Observe(new QueryFailed("b", "host died", "h1"));
        ops.Observe(new QueryCompleted("a", "hi", FinishReason.Length, new PhaseTimings(0, 0, 5, 6, 7, 20), 20, 2));
        Assert.Empty(ops.List().Queries);
    }

    [Fact]
    public void Tracers_get_copies_until_the_end_and_unknown_ids_get_not_found()
    {
        var ops = new RouterOps();
        ops.Submitted(Query("a"));
        ops.Trace("a", TestActor);
        ops.Trace("zzz", TestActor);
        ExpectMsg<QueryNotFound>(m => m.QueryId == "zzz");
        ops.Observe(new PrefillProgress("a", "h0", 1, 2));
        ExpectMsg<PrefillProgress>();
        ops.Observe(new QueryCancelled("a"));
        ExpectMsg<QueryCancelled>();
        ops.Observe(new TokenChunk("a", 1, [3], "late"));
        ExpectNoMsg(TimeSpan.FromMilliseconds(100));
    }
}
