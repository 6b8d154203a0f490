using System.Text.Json.Nodes;
using Akka.Actor;
using Akka.Cluster;
using ApbCluster.Admin;

namespace ApbCluster.Runtime.Admin;

/// <summary>`cluster tail [-n COUNT]`: membership, reachability and leader changes as they happen.</summary>
public static class ClusterTailCommand
{
    public static void Register(AdminCommandRegistry registry, ActorSystem system) =>
        registry.AddStream("cluster", "tail", "cluster tail [-n COUNT]",
            "stream membership events until stopped (Ctrl+C) or COUNT events", (args, emit, ct) => Tail(system, args, emit, ct));

    private static async Task<AdminResponse> Tail(ActorSystem system, AdminArgs args, Func<AdminResponse, Task> emit, CancellationToken ct)
    {
        var limit = args.IntOption("-n", int.MaxValue, 1, int.MaxValue);
        var cluster = Cluster.Get(system);
        // Snapshot mode: the current state arrives as one CurrentClusterState, which we skip;
        // only changes from now on are shown.
        using var events = ChannelActors.Start(system,
            ctx => cluster.Subscribe(ctx.Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsSnapshot,
                typeof(ClusterEvent.IMemberEvent), typeof(ClusterEvent.IReachabilityEvent), typeof(ClusterEvent.LeaderChanged)),
            ctx => cluster.Unsubscribe(ctx.Self));
        var count = 0;
        await foreach (var message in events.Messages.ReadAllAsync(ct))
        {
            if (Describe(message) is not var (kind, address, text)) continue;
            var json = new JsonObject { ["time"] = DateTimeOffset.UtcNow.ToString("O"), ["event"] = kind, ["address"] = address };
            await emit(AdminResponse.Line($"{DateTimeOffset.UtcNow:HH:mm:ss.fff} {text}", json));
            if (++count >= limit) break;
        }
        return AdminResponse.Ok($"({count} event(s))", new JsonObject { ["events"] = count });
    }

    private static (string Kind, string? Address, string Text)? Describe(object message) => message switch
    {
        ClusterEvent.MemberJoined e => ("joined", e.Member.Address.ToString(), $"member joined   {e.Member.Address} [{string.Join(",", e.Member.Roles)}]"),
        ClusterEvent.MemberUp e => ("up", e.Member.Address.ToString(), $"member up       {e.Member.Address} [{string.Join(",", e.Member.Roles)}]"),
        ClusterEvent.MemberLeft e => ("left", e.Member.Address.ToString(), $"member leaving  {e.Member.Address}"),
        ClusterEvent.MemberExited e => ("exited", e.Member.Address.ToString(), $"member exited   {e.Member.Address}"),
        ClusterEvent.MemberDowned e => ("downed", e.Member.Address.ToString(), $"member downed   {e.Member.Address}"),
        ClusterEvent.MemberRemoved e => ("removed", e.Member.Address.ToString(), $"member removed  {e.Member.Address} (was {e.PreviousStatus})"),
        ClusterEvent.UnreachableMember e => ("unreachable", e.Member.Address.ToString(), $"unreachable     {e.Member.Address}"),
        ClusterEvent.ReachableMember e => ("reachable", e.Member.Address.ToString(), $"reachable again {e.Member.Address}"),
        ClusterEvent.LeaderChanged e => ("leader", e.Leader?.ToString(), $"leader is now   {e.Leader?.ToString() ?? "(none)"}"),
        _ => null,
    };
}
