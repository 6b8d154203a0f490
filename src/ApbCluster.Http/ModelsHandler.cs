using Akka.Actor;
using ApbCluster.Contracts;
using Microsoft.AspNetCore.Http;

namespace ApbCluster.Http;

/// <summary>GET /v1/models: the models the registered hosts serve (as the router reports them).</summary>
internal static class ModelsHandler
{
    public const string FallbackModel = "apb-cluster";

    public static async Task HandleAsync(HttpContext ctx, IActorRef router)
    {
        ClusterStatus status;
        try
        {
            status = await router.Ask<ClusterStatus>(GetClusterStatus.Instance, TimeSpan.FromSeconds(3), ctx.RequestAborted);
        }
        catch (AskTimeoutException)
        {
            await HttpResults.Error(ctx, OpenAiError.Unavailable("the router did not answer (no router node up?)", "router_unavailable"), "models");
            return;
        }
        var created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var names = status.Hosts.Select(h => h.Model).Where(m => m.Length > 0).Distinct().DefaultIfEmpty(FallbackModel);
        await HttpResults.Ok(ctx, new ModelList("list", names.Select(n => new ModelEntry(n, "model", created, "apb-cluster")).ToList()), "models");
    }
}
