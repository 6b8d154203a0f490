using Akka.Actor;
using ApbCluster.Contracts;
using ApbCluster.Runtime.Admin;

namespace ApbCluster.Runtime.Ops;

/// <summary>
/// Whether the router singleton can serve: it answers, and has at least <c>expected</c> registered, reachable hosts
/// (apb.router.expected-hosts). One rule for `node health` and the HTTP front door's GET /health, so a load
/// balancer and the compose health check agree.
/// </summary>
public static class RouterHealth
{
    public static async Task<(bool Ok, string Detail)> CheckAsync(IActorRef routerProxy, int expected, CancellationToken ct)
    {
        ClusterStatus status;
        try
        {
            status = (ClusterStatus)await RouterAsk.AskAsync(routerProxy, GetClusterStatus.Instance, ct);
        }
        catch (InvalidOperationException e)
        {
            return (false, e.Message);
        }
        var live = status.Hosts.Count(h => h.State != HostState.Unreachable);
        return (live >= expected,
            $"the router ({status.RouterAddress}) has {live} reachable registered host(s), expects at least {expected} (apb.router.expected-hosts)");
    }
}
