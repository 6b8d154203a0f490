using System.Text.Json;
using System.Text.Json.Nodes;
using Akka.Actor;
using ApbCluster.Admin;
using ApbCluster.Contracts;

namespace ApbCluster.Runtime.Admin;

/// <summary>`query list`, `query cancel -q ID`, `query trace -q ID` against the router singleton.</summary>
public static class QueryPalette
{
    public static void Register(AdminCommandRegistry registry, ActorSystem system, IActorRef routerProxy) =>
        registry
            .Add("query", "list", "query list", "queries the router holds: id, phase, age, hosts, tokens",
                async (_, ct) => List(await RouterAsk.AskAsync(routerProxy, ListQueries.Instance, ct)))
            .Add("query", "cancel", "query cancel -q ID", "cancel a query; every host frees its KV",
                async (args, ct) => Cancelled(await RouterAsk.AskAsync(routerProxy, new CancelQuery(args.RequiredOption("-q", "ID")), ct)))
            .AddStream("query", "trace", "query trace -q ID", "stream a running query's prefill progress and tokens until it ends",
                (args, emit, ct) => Trace(system, routerProxy, args.RequiredOption("-q", "ID"), emit, ct));

    private static AdminResponse List(object reply)
    {
        if (reply is not QueryList list) return AdminResponse.Error($"unexpected reply from the router: {reply.GetType().Name}");
        if (list.Queries.Count == 0) return AdminResponse.Ok("no queries", new JsonArray());
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var rows = list.Queries.Select(q => (IReadOnlyList<string>)
            [q.QueryId, q.Phase, $"{(now - q.SubmittedUnixMs) / 1000.0:0.0}s", q.PromptTokens.ToString(), q.GeneratedTokens.ToString(), string.Join(",", q.Hosts)]);
        return AdminResponse.Ok(TextTable.Render(["QUERY", "PHASE", "AGE", "PROMPT", "GENERATED", "HOSTS"], rows),
            JsonSerializer.SerializeToNode(list.Queries, AdminJson.Options));
    }

    private static AdminResponse Cancelled(object reply) => reply switch
    {
        QueryCancelled c => AdminResponse.Ok($"cancelled: {c.QueryId}", new JsonObject { ["queryId"] = c.QueryId, ["cancelled"] = true }),
        QueryNotFound n => AdminResponse.Error($"no such query: {n.QueryId} (finished already?)"),
        QueryFailed f => AdminResponse.Error($"cancel of {f.QueryId} failed: {f.Reason}"),
        _ => AdminResponse.Error($"unexpected reply from the router: {reply.GetType().Name}"),
    };

    private static async Task<AdminResponse> Trace(ActorSystem system, IActorRef routerProxy, string queryId, Func<AdminResponse, Task> emit, CancellationToken ct)
    {
        using var trace = ChannelActors.Start(system, ctx => routerProxy.Tell(new TraceQuery(queryId), ctx.Self));
        var progress = new PrefillProgressBar();
        // A router that does not know TraceQuery never answers: say so instead of waiting forever.
        using var firstReply = CancellationTokenSource.CreateLinkedTokenSource(ct);
        firstReply.CancelAfter(RouterAsk.Timeout);
        var answered = false;
        while (true)
        {
            object message;
            try
            {
                message = await trace.Messages.ReadAsync(answered ? ct : firstReply.Token);
            }
            catch (OperationCanceledException) when (!answered && !ct.IsCancellationRequested)
            {
                return AdminResponse.Error($"the router did not answer TraceQuery within {RouterAsk.Timeout.TotalSeconds:0}s " +
                                           "(no router node up yet, or a router version that does not handle this command)");
            }
            answered = true;
            switch (message)
            {
                case QueryNotFound:
                    return AdminResponse.Error($"no such query: {queryId} (finished already, or lost in a router hand-over)");
                case QueryAccepted a:
                    await emit(AdminResponse.Line($"accepted: hosts {string.Join(" -> ", a.Plan.HostsInRingOrder)}, blocks [{string.Join(", ", a.Plan.BlockLengths)}]",
                        JsonSerializer.SerializeToNode(a, AdminJson.Options)));
                    break;
                case PrefillProgress p:
                    await emit(AdminResponse.Line(progress.Update(p), JsonSerializer.SerializeToNode(p, AdminJson.Options)));
                    break;
                case TokenChunk t:
                    await emit(AdminResponse.Line($"tokens #{t.Index}: {t.Text}", JsonSerializer.SerializeToNode(t, AdminJson.Options)));
                    break;
                case QueryCompleted c:
                    return AdminResponse.Ok($"completed ({c.FinishReason.ToOpenAi()}): {c.GeneratedTokens} tokens, ttft {c.Timings.TimeToFirstTokenMs:0} ms, total {c.Timings.TotalMs:0} ms",
                        JsonSerializer.SerializeToNode(c, AdminJson.Options));
                case QueryFailed f:
                    return AdminResponse.Error($"failed: {f.Reason}{(f.FailingHost is null ? "" : $" (host {f.FailingHost})")}");
                case QueryCancelled:
                    return AdminResponse.Ok($"cancelled: {queryId}");
            }
        }
    }
}
