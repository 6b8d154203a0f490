using Akka.Actor;
using Akka.TestKit.Xunit;
using ApbCluster.Contracts;
using ApbCluster.Runtime.Actors;
using ApbCluster.Runtime.Engine;

namespace ApbCluster.Runtime.Tests.Actors;

public sealed class GpuHostTests() : TestKit(ClusterTestConfig.Hocon)
{
    [Fact]
    public void Host_registers_periodically_and_reports_itself_locally()
    {
        var router = CreateTestProbe();
        var host = Sys.ActorOf(GpuHost.Props("node/gpu0", new CpuPlaceholderEngine(), router.Ref, TimeSpan.FromMilliseconds(200)));

        var first = router.ExpectMsg<RegisterHost>();
        Assert.Equal(("node/gpu0", "cpu"), (first.HostId, first.Device));
        Assert.True(first.MemoryUsedBytes > 0 && first.MemoryTotalBytes >= first.MemoryUsedBytes);
        Assert.Equal(host, first.Host);
        router.Reply(new HostRegistered("node/gpu0", router.Ref));

        // Periodic re-registration is what rebuilds a new router's registry after hand-over.
        router.ExpectMsg<RegisterHost>(TimeSpan.FromSeconds(3));

        host.Tell(GetClusterStatus.Instance);
        var local = Assert.Single(ExpectMsg<ClusterStatus>().Hosts);
        Assert.Equal(HostState.Ready, local.State);
    }

    [Fact]
    public async Task Placeholder_engine_refuses_work_clearly()
    {
        using var engine = new CpuPlaceholderEngine();
        var error = await Assert.ThrowsAsync<NotSupportedException>(() => engine.PrefillAsync(
            new ShardPrefillRequest("q", [], [1, 2], 0, 0, 1, AttentionMode.Apb, null), new Progress<int>(), CancellationToken.None));
        Assert.Contains("no model engine", error.Message);
    }
}
