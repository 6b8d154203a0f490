using System.Text.Json;
using Akka.Actor;
using Akka.Cluster;
using ApbCluster.Admin;
using ApbCluster.Contracts;

namespace ApbCluster.Runtime.Admin;

/// <summary>
/// `node health`: exit 0 when this node can do its part, 1 (with every reason) when not. Every node: it is an Up
/// member. A router node: the router singleton answers and has at least apb.router.expected-hosts registered,
/// reachable hosts (a router that lost its hosts, say after a restart into a cluster of its own, is red, not green).
/// A gpu-host node: each of its hosts has been registered by a router (refused or never reached: red).
/// The compose health check (docker/apb-health.sh) runs it.
/// </summary>
public static class HealthPalette
{
    private sealed record Check(string Name, bool Ok, string Detail);

    public static void Register(AdminCommandRegistry registry, ActorSystem system, IActorRef routerProxy, IReadOnlyList<IActorRef> localHosts,
        bool isRouter, int expectedHosts)
    {
        var cluster = Cluster.Get(system);
        registry.Add("node", "health", "node health", "exit 0 when this node is healthy (member Up; router: its expected hosts registered), else 1 with why",
            async (_, ct) =>
            {
                var checks = new List<Check> { Member(cluster) };
                if (isRouter) checks.Add(await RouterHosts(routerProxy, expectedHosts, ct));
                if (localHosts.Count > 0) checks.Add(await LocalHosts(localHosts, ct));
                return Render(checks);
            });
    }

    private static Check Member(Cluster cluster)
    {
        var status = cluster.SelfMember.Status;
        return new Check("member", status == MemberStatus.Up, $"this node is {status}");
    }

    private static async Task<Check> RouterHosts(IActorRef routerProxy, int expected, CancellationToken ct)
    {
        var (ok, detail) = await Ops.RouterHealth.CheckAsync(routerProxy, expected, ct);
        return new Check("router", ok, detail);
    }

    private static async Task<Check> LocalHosts(IReadOnlyList<IActorRef> hosts, CancellationToken ct)
    {
        var replies = await Task.WhenAll(hosts.Select(h => h.Ask<ClusterStatus>(GetClusterStatus.Instance, RouterAsk.Timeout, ct)));
        var waiting = replies.SelectMany(r => r.Hosts).Where(h => h.State == HostState.Starting).Select(h => h.HostId).ToList();
        return new Check("hosts", waiting.Count == 0, waiting.Count == 0
            ? $"{hosts.Count} host(s) registered with the router"
            : $"not registered with a router yet: {string.Join(", ", waiting)}");
    }

    private static AdminResponse Render(List<Check> checks)
    {
        var healthy = checks.All(c => c.Ok);
        var text = (healthy ? "healthy" : "unhealthy") + "\n" + string.Join("\n", checks.Select(c => $"  {(c.Ok ? "ok  " : "FAIL")} {c.Name}: {c.Detail}"));
        var json = JsonSerializer.SerializeToNode(new { healthy, checks }, AdminJson.Options);
        return new AdminResponse(healthy ? AdminExitCodes.Ok : AdminExitCodes.CommandError, text, json);
    }
}
