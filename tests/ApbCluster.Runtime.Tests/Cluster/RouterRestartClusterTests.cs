using ApbCluster.Admin;
using static ApbCluster.Runtime.Tests.Cluster.ClusterProcesses;

namespace ApbCluster.Runtime.Tests.Cluster;

/// <summary>
/// Seeds as docs/operations.md says (the router and the hosts, the same list on every node): the only router is
/// SIGKILLed and started again on its address while both hosts run on; it joins their cluster instead of forming a
/// new one, and the hosts register with it again.
/// </summary>
[Collection(LoopbackClusterCollection.Name)]
public sealed class RouterRestartClusterTests : IDisposable
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(45);

    private readonly NodeGroup _nodes = new("""
        akka.cluster.split-brain-resolver.stable-after = 3s
        apb.gpu-host.register-interval = 1s
        """);

    [Fact]
    public async Task A_restarted_lone_router_rejoins_the_hosts_instead_of_forming_a_cluster_of_its_own()
    {
        var ct = TestContext.Current.CancellationToken;
        var p = FreePorts(6);
        var seeds = $"127.0.0.1:{p[0]},127.0.0.1:{p[2]},127.0.0.1:{p[4]}";
        Dictionary<string, string> Env(int i, string role) => NodeEnvironment(p[2 * i], p[2 * i + 1], role, seeds, _nodes.OpsFile!);
        var router = _nodes.Start("router", Env(0, "router"));
        _nodes.Start("host-a", Env(1, "gpu-host"));
        _nodes.Start("host-b", Env(2, "gpu-host"));
        await using (var admin = await _nodes.ConnectAdminAsync($"127.0.0.1:{p[1]}", Bound, ct))
            await _nodes.Eventually("2 hosts registered", Bound, async () => (await GpuHosts(admin, ct)).Count == 2);
        Assert.DoesNotContain("CLUSTER_SEEDS names only this node", router.Output);

        router.Kill();
        Assert.True(await router.WaitForExitAsync(TimeSpan.FromSeconds(5)));
        var restarted = _nodes.Start("router-restarted", Env(0, "router"));

        await using var again = await _nodes.ConnectAdminAsync($"127.0.0.1:{p[1]}", Bound, ct);
        await _nodes.Eventually("the restarted router sees both hosts again", Bound, async () => (await GpuHosts(again, ct)).Count == 2);
        var members = (await again.RunAsync("cluster show", [], ct)).Json!["members"]!.AsArray().Select(m => m!["address"]!.GetValue<string>()).ToList();
        Assert.Contains($"akka.tcp://apb@127.0.0.1:{p[2]}", members);
        Assert.Contains($"akka.tcp://apb@127.0.0.1:{p[4]}", members);
        Assert.False(restarted.HasExited, _nodes.Outputs());
    }

    public void Dispose() => _nodes.Dispose();
}
