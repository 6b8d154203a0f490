using System.Text.Json.Nodes;
using Akka.Actor;
using Akka.Cluster;
using ApbCluster.Admin;

namespace ApbCluster.Runtime.Admin;

/// <summary>Petabridge.Cmd-style `cluster` commands over Akka.Cluster's own API.</summary>
public static class ClusterPalette
{
    public static void Register(AdminCommandRegistry registry, ActorSystem system)
    {
        var cluster = Cluster.Get(system);
        registry
            .Add("cluster", "show", "cluster show", "members: address, status, roles, reachability; leader and self",
                (_, _) => Task.FromResult(Show(cluster)))
            .Add("cluster", "leave", "cluster leave [-a ADDRESS]", "gracefully remove a node (this one by default)",
                (args, _) => Task.FromResult(Leave(cluster, args)))
            .Add("cluster", "down", "cluster down -a ADDRESS", "mark a node down (use for dead nodes)",
                (args, _) => Task.FromResult(Down(cluster, args)))
            .Add("cluster", "join", "cluster join -a ADDRESS", "join this node to the cluster at ADDRESS",
                (args, _) => Task.FromResult(Join(cluster, args)))
            .Add("cluster", "down-unreachable", "cluster down-unreachable", "down every member this node sees as unreachable",
                (_, _) => Task.FromResult(DownUnreachable(cluster)));
    }

    private static AdminResponse Show(Cluster cluster)
    {
        var state = cluster.State;
        var unreachable = state.Unreachable.Select(m => m.Address).ToHashSet();
        var members = state.Members.OrderBy(m => m.Address.ToString(), StringComparer.Ordinal).ToList();
        var leader = state.Leader?.ToString() ?? "(none)";
        var rows = members.Select(m => (IReadOnlyList<string>)
            [m.Address.ToString(), m.Status.ToString(), string.Join(",", m.Roles), unreachable.Contains(m.Address) ? "unreachable" : "reachable"]);
        var text = TextTable.Render(["ADDRESS", "STATUS", "ROLES", "REACHABILITY"], rows) +
                   $"\nleader: {leader}\nself:   {cluster.SelfAddress} ({cluster.SelfMember.Status})";
        var json = new JsonObject
        {
            ["self"] = cluster.SelfAddress.ToString(),
            ["selfStatus"] = cluster.SelfMember.Status.ToString(),
            ["leader"] = state.Leader?.ToString(),
            ["members"] = new JsonArray(members.Select(m => (JsonNode)new JsonObject
            {
                ["address"] = m.Address.ToString(),
                ["status"] = m.Status.ToString(),
                ["roles"] = new JsonArray(m.Roles.Select(r => (JsonNode)JsonValue.Create(r)!).ToArray()),
                ["reachable"] = !unreachable.Contains(m.Address),
            }).ToArray()),
        };
        return AdminResponse.Ok(text, json);
    }

    private static AdminResponse Leave(Cluster cluster, AdminArgs args)
    {
        var address = args.Option("-a") is { } a ? ParseMember(cluster, a) : cluster.SelfAddress;
        cluster.Leave(address);
        return AdminResponse.Ok($"leaving: {address}");
    }

    private static AdminResponse Down(Cluster cluster, AdminArgs args)
    {
        var address = ParseMember(cluster, args.RequiredOption("-a", "ADDRESS"));
        cluster.Down(address);
        return AdminResponse.Ok($"downed: {address}");
    }

    private static AdminResponse Join(Cluster cluster, AdminArgs args)
    {
        var address = ParseAddress(args.RequiredOption("-a", "ADDRESS"));
        cluster.Join(address);
        return AdminResponse.Ok($"joining: {address}");
    }

    private static AdminResponse DownUnreachable(Cluster cluster)
    {
        var unreachable = cluster.State.Unreachable.Select(m => m.Address).ToList();
        foreach (var address in unreachable) cluster.Down(address);
        return AdminResponse.Ok(unreachable.Count == 0 ? "no unreachable members" : $"downed: {string.Join(", ", unreachable)}",
            new JsonArray(unreachable.Select(a => (JsonNode)JsonValue.Create(a.ToString())!).ToArray()));
    }

    private static Address ParseAddress(string text)
    {
        try
        {
            return Address.Parse(text);
        }
        catch (Exception)
        {
            throw new AdminUsageException($"'{text}' is not an address like akka.tcp://apb@host:port");
        }
    }

    /// <summary>Only current members may be left or downed: a typo must not look like success.</summary>
    private static Address ParseMember(Cluster cluster, string text)
    {
        var address = ParseAddress(text);
        if (!cluster.State.Members.Any(m => m.Address.Equals(address)))
            throw new InvalidOperationException($"{address} is not a member of this cluster");
        return address;
    }
}
