using System.Text.Json.Nodes;
using Akka.Actor;
using ApbCluster.Admin;
using ApbCluster.Runtime.Logging;

namespace ApbCluster.Runtime.Admin;

/// <summary>`log peek`: recent lines from the in-memory ring buffer.</summary>
public static class LogPalette
{
    public static void Register(AdminCommandRegistry registry, ActorSystem system) =>
        registry.Add("log", "peek", "log peek [-n COUNT]", "the last COUNT log lines (default 50)", (args, _) =>
        {
            var buffer = LogRingBuffer.Get(system);
            var lines = buffer.Last(args.IntOption("-n", 50, 1, buffer.Capacity));
            return Task.FromResult(AdminResponse.Ok(string.Join('\n', lines),
                new JsonArray(lines.Select(l => (JsonNode)JsonValue.Create(l)!).ToArray())));
        });
}
