using Akka.Actor;
using ApbCluster.Contracts;

namespace ApbCluster.Http;

/// <summary>What the chat handler does around a router failover, and the errors callers see for it.</summary>
internal static class RouterFailover
{
    /// <summary>Waits (at most <paramref name="wait"/>) until the router singleton's node is available;
    /// returns that node, or the 503 to answer with. Without a watch (no cluster) there is nothing to wait for.</summary>
    public static async Task<(Address? Node, OpenAiError? Error)> AdmitAsync(IActorRef? watch, TimeSpan wait, CancellationToken ct)
    {
        if (watch is null) return (null, null);
        object reply;
        try
        {
            reply = await watch.Ask(new RouterWatch.Await(wait), wait + TimeSpan.FromSeconds(5), ct);
        }
        catch (AskTimeoutException)
        {
            reply = new RouterWatch.Unavailable("the front door's router watch did not answer");
        }
        return reply switch
        {
            RouterWatch.Ready ready => (ready.Router, null),
            RouterWatch.Unavailable u => (null, OpenAiError.Unavailable(
                $"no router is available: {u.Reason}; waited {wait.TotalSeconds:0.#}s (apb.http.router-wait), retry later", "router_unavailable")),
            _ => (null, OpenAiError.Unavailable($"unexpected router watch reply {reply}", "router_unavailable")),
        };
    }

    public static OpenAiError Lost(RouterUnavailable lost) => OpenAiError.Unavailable(lost.Reason, "router_unavailable");

    /// <summary>An operator's `query cancel` (or another client's cancel of this id) ended the query: the caller must not
    /// mistake the empty answer for a result.</summary>
    public static OpenAiError Cancelled(QueryCancelled cancelled) => OpenAiError.Unavailable(
        $"query {cancelled.QueryId} was cancelled on the server (an operator's `query cancel`) before it finished; no answer was produced",
        "query_cancelled");
}
