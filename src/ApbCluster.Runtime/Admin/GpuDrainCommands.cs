using System.Text.Json;
using Akka.Actor;
using ApbCluster.Admin;
using ApbCluster.Contracts;

namespace ApbCluster.Runtime.Admin;

/// <summary>`gpu drain -h HOST` / `gpu undrain -h HOST`: keep new queries off a host, or let them back.</summary>
public static class GpuDrainCommands
{
    public static void Register(AdminCommandRegistry registry, IActorRef routerProxy) =>
        registry
            .Add("gpu", "drain", "gpu drain -h HOST", "plan no new queries on HOST (running ones finish)",
                (args, ct) => Change(routerProxy, new DrainHost(args.RequiredOption("-h", "HOST (an id from gpu list)")), ct))
            .Add("gpu", "undrain", "gpu undrain -h HOST", "let HOST take new queries again",
                (args, ct) => Change(routerProxy, new UndrainHost(args.RequiredOption("-h", "HOST (an id from gpu list)")), ct));

    private static async Task<AdminResponse> Change(IActorRef routerProxy, object request, CancellationToken ct)
    {
        var reply = await RouterAsk.AskAsync(routerProxy, request, ct);
        if (reply is not HostDrainChanged changed)
            return AdminResponse.Error($"unexpected reply from the router: {reply.GetType().Name}");
        if (!changed.Known)
            return AdminResponse.Error($"the router knows no host '{changed.HostId}' (see gpu list)");
        return AdminResponse.Ok($"{changed.HostId}: {(changed.Draining ? "draining" : "accepting queries")}",
            JsonSerializer.SerializeToNode(changed, AdminJson.Options));
    }
}
