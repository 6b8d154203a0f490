using ApbCluster.Client;
using ApbCluster.Contracts;

// apb-sample-client ROUTER_HOST:PORT [CONTEXT_FILE|-] QUESTION [MAX_NEW_TOKENS]
// Submits one APB query through ClusterClient (this process never joins the cluster) and prints
// the answer as it streams. Ctrl+C cancels the query (every host frees its KV).
if (args.Length < 3)
{
    Console.Error.WriteLine("usage: apb-sample-client ROUTER_HOST:PORT CONTEXT_FILE|- QUESTION [MAX_NEW_TOKENS]");
    return 2;
}
var context = args[1] == "-" ? await Console.In.ReadToEndAsync() : await File.ReadAllTextAsync(args[1]);
var maxNew = args.Length > 3 ? int.Parse(args[3]) : 64;
var query = new SubmitQuery(Guid.NewGuid().ToString("N"), QueryContext.FromText(context), args[2],
    GenerationOptions.Greedy(maxNew), AttentionMode.Apb, null);

using var cancel = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    cancel.Cancel();
};

await using var client = ClusterQueryClient.Connect([args[0]]);
await foreach (var e in client.AskAsync(query, cancel.Token))
{
    switch (e)
    {
        case QueryAccepted a:
            Console.Error.WriteLine($"[accepted on {string.Join(" -> ", a.Plan.HostsInRingOrder)}]");
            break;
        case PrefillProgress p when p.Layer == p.Layers:
            Console.Error.WriteLine($"[{p.Host} prefilled {p.Layers} layers]");
            break;
        case TokenChunk t:
            Console.Write(t.Text);
            break;
        case QueryCompleted c:
            Console.WriteLine();
            Console.Error.WriteLine($"[done: {c.GeneratedTokens} tokens, {c.FinishReason}, ttft {c.Timings.TimeToFirstTokenMs:0} ms, total {c.Timings.TotalMs:0} ms]");
            return 0;
        case QueryFailed f:
            Console.Error.WriteLine($"\n[failed{(f.FailingHost is null ? "" : $" on {f.FailingHost}")}: {f.Reason}]");
            return 1;
        case QueryCancelled:
            Console.Error.WriteLine("\n[cancelled]");
            return 130;
        case RouterBusy b:
            Console.Error.WriteLine($"[router busy: {b.QueueDepth}/{b.QueueCapacity} queued; retry later]");
            return 3;
    }
}
return 1;
