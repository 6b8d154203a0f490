using Akka.Actor;
using ApbCluster.Contracts;
using Microsoft.AspNetCore.Http;

namespace ApbCluster.Http;

/// <summary>
/// GET /v1/models and /v1/models/{id}: the models the registered hosts serve (as the router reports
/// them), and the check that a chat request names one of them.
/// </summary>
internal static class ModelsHandler
{
    /// <summary>Always accepted: the name for "whatever this cluster serves", listed when no host has registered.</summary>
    public const string FallbackModel = "apb-cluster";

    private static readonly TimeSpan AskTimeout = TimeSpan.FromSeconds(3);

    public static async Task ListAsync(HttpContext ctx, IActorRef router)
    {
        if (await ServedAsync(ctx, router) is not { } names)
        {
            await HttpResults.Error(ctx, RouterSilent, "models");
            return;
        }
        var created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        await HttpResults.Ok(ctx, new ModelList("list", names.Select(n => Entry(n, created)).ToList()), "models");
    }

    public static async Task GetAsync(HttpContext ctx, IActorRef router, string id)
    {
        if (await ServedAsync(ctx, router) is not { } names)
            await HttpResults.Error(ctx, RouterSilent, "models");
        else if (names.Contains(id) || id == FallbackModel)
            await HttpResults.Ok(ctx, Entry(id, DateTimeOffset.UtcNow.ToUnixTimeSeconds()), "models");
        else
            await HttpResults.Error(ctx, NotServed(id, names), "models");
    }

    /// <summary>
    /// A named model the hosts do not serve is refused rather than answered by another model. No name,
    /// the fallback name, no registered host yet (the router then says so) or a silent router pass.
    /// </summary>
    public static async Task<OpenAiError?> CheckModelAsync(HttpContext ctx, IActorRef router, string? model)
    {
        if (string.IsNullOrEmpty(model) || model == FallbackModel) return null;
        var names = await ServedAsync(ctx, router);
        return names is null || names.Contains(model) || names.SequenceEqual([FallbackModel]) ? null : NotServed(model, names);
    }

    private static OpenAiError NotServed(string model, IReadOnlyList<string> names) =>
        OpenAiError.NotFound($"the model '{model}' is not served here; this cluster serves {string.Join(", ", names)} (GET /v1/models)", "model_not_found", "model");

    private static OpenAiError RouterSilent => OpenAiError.Unavailable("the router did not answer (no router node up?)", "router_unavailable");

    private static ModelEntry Entry(string id, long created) => new(id, "model", created, "apb-cluster");

    private static async Task<IReadOnlyList<string>?> ServedAsync(HttpContext ctx, IActorRef router)
    {
        try
        {
            var status = await router.Ask<ClusterStatus>(GetClusterStatus.Instance, AskTimeout, ctx.RequestAborted);
            return status.Hosts.Select(h => h.Model).Where(m => m.Length > 0).Distinct().DefaultIfEmpty(FallbackModel).ToList();
        }
        catch (AskTimeoutException)
        {
            return null;
        }
    }
}
