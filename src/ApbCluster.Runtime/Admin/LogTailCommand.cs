using System.Text.Json.Nodes;
using System.Threading.Channels;
using Akka.Actor;
using ApbCluster.Admin;
using ApbCluster.Runtime.Logging;

namespace ApbCluster.Runtime.Admin;

/// <summary>`log tail [-n COUNT]`: new log lines of this node as they are written.</summary>
public static class LogTailCommand
{
    public static void Register(AdminCommandRegistry registry, ActorSystem system) =>
        registry.AddStream("log", "tail", "log tail [-n COUNT]",
            "stream new log lines until stopped (Ctrl+C) or COUNT lines", (args, emit, ct) => Tail(system, args, emit, ct));

    private static async Task<AdminResponse> Tail(ActorSystem system, AdminArgs args, Func<AdminResponse, Task> emit, CancellationToken ct)
    {
        var limit = args.IntOption("-n", int.MaxValue, 1, int.MaxValue);
        // Bounded, dropping the oldest: a slow admin client must never slow the logger down.
        var lines = Channel.CreateBounded<string>(new BoundedChannelOptions(10_000) { FullMode = BoundedChannelFullMode.DropOldest });
        using var subscription = LogRingBuffer.Get(system).Subscribe(line => lines.Writer.TryWrite(line));
        var count = 0;
        await foreach (var line in lines.Reader.ReadAllAsync(ct))
        {
            await emit(AdminResponse.Line(line, JsonValue.Create(line)));
            if (++count >= limit) break;
        }
        return AdminResponse.Ok($"({count} line(s))", new JsonObject { ["lines"] = count });
    }
}
