using System.Text;
using Akka.Actor;
using ApbCluster.Admin;

namespace ApbCluster.Runtime.Admin;

/// <summary>`actor hierarchy`: the local actor tree, walked from the root guardian.</summary>
public static class ActorPalette
{
    public static void Register(AdminCommandRegistry registry, ActorSystem system) =>
        registry.Add("actor", "hierarchy", "actor hierarchy [-d DEPTH]", "local actor tree (default depth 4)",
            (args, _) => Task.FromResult(Hierarchy(system, args.IntOption("-d", 4, 1, 32))));

    private static AdminResponse Hierarchy(ActorSystem system, int depth)
    {
        var root = ((ExtendedActorSystem)system).Provider.RootGuardian;
        var sb = new StringBuilder();
        var count = Walk(root, 0, depth, sb);
        return AdminResponse.Ok(sb.ToString().TrimEnd() + $"\n({count} actors shown, depth {depth})");
    }

    private static int Walk(IActorRef actor, int level, int maxDepth, StringBuilder sb)
    {
        sb.Append(' ', level * 2).AppendLine(level == 0 ? "/" : actor.Path.Name);
        if (level >= maxDepth || actor is not ActorRefWithCell withCell) return 1;
        var count = 1;
        foreach (var child in withCell.Children.OrderBy(c => c.Path.Name, StringComparer.Ordinal))
            count += Walk(child, level + 1, maxDepth, sb);
        return count;
    }
}
