using System.Text.Json;
using Akka.Actor;
using ApbCluster.Admin;
using ApbCluster.Contracts;

namespace ApbCluster.Runtime.Admin;

/// <summary>`gpu list` and `router status`: the router's view, asked through the singleton proxy.</summary>
public static class GpuPalette
{
    private static readonly TimeSpan AskTimeout = TimeSpan.FromSeconds(5);

    public static void Register(AdminCommandRegistry registry, IActorRef routerProxy, IReadOnlyList<IActorRef> localHosts)
    {
        registry
            .Add("gpu", "list", "gpu list [--local]", "GPU hosts known to the router (or only this node's with --local)",
                async (args, ct) => Render(args.HasFlag("--local") ? await LocalStatus(localHosts, ct) : await AskRouter(routerProxy, ct)))
            .Add("router", "status", "router status", "router address, registered hosts, queue depth, queries in flight",
                async (_, ct) =>
                {
                    var status = await AskRouter(routerProxy, ct);
                    return AdminResponse.Ok(
                        $"router:    {status.RouterAddress}\nhosts:     {status.Hosts.Count}\nqueue:     {status.QueueDepth}\nin flight: {status.InFlight}",
                        JsonSerializer.SerializeToNode(new { status.RouterAddress, hosts = status.Hosts.Count, status.QueueDepth, status.InFlight }, AdminJson.Options));
                });
    }

    private static async Task<ClusterStatus> AskRouter(IActorRef routerProxy, CancellationToken ct)
    {
        try
        {
            return await routerProxy.Ask<ClusterStatus>(GetClusterStatus.Instance, AskTimeout, ct);
        }
        catch (AskTimeoutException)
        {
            throw new InvalidOperationException($"the router did not answer within {AskTimeout.TotalSeconds:0}s (no router node up yet?)");
        }
    }

    private static async Task<ClusterStatus> LocalStatus(IReadOnlyList<IActorRef> hosts, CancellationToken ct)
    {
        var replies = await Task.WhenAll(hosts.Select(h => h.Ask<ClusterStatus>(GetClusterStatus.Instance, AskTimeout, ct)));
        return new ClusterStatus("", replies.SelectMany(r => r.Hosts).ToList(), 0, 0);
    }

    private static AdminResponse Render(ClusterStatus status)
    {
        var rows = status.Hosts.Select(h => (IReadOnlyList<string>)
        [
            h.HostId, h.Address, h.Device, $"{TextTable.Bytes(h.MemoryUsedBytes)} / {TextTable.Bytes(h.MemoryTotalBytes)}",
            h.Model.Length == 0 ? "-" : h.Model, TextTable.Bytes(h.KvBytes),
            $"{TextTable.Bytes(h.HostMemoryUsedBytes)} / {TextTable.Bytes(h.HostMemoryTotalBytes)}", TextTable.Bytes(h.HostKvBytes), h.State.ToString(),
        ]);
        var text = status.Hosts.Count == 0 ? "no GPU hosts registered"
            : TextTable.Render(["HOST", "ADDRESS", "DEVICE", "MEMORY", "MODEL", "KV", "HOST MEMORY", "KV ON HOST", "STATE"], rows);
        return AdminResponse.Ok(text, JsonSerializer.SerializeToNode(status.Hosts, AdminJson.Options));
    }
}
