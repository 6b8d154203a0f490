using Akka.Actor;

namespace ApbCluster.Runtime.Admin;

/// <summary>The streaming and query commands added for operations (issue 6), registered in one call.</summary>
public static class OpsPalettes
{
    public static void Register(AdminCommandRegistry registry, ActorSystem system, IActorRef routerProxy)
    {
        ClusterTailCommand.Register(registry, system);
        LogTailCommand.Register(registry, system);
        GpuDrainCommands.Register(registry, routerProxy);
        QueryPalette.Register(registry, system, routerProxy);
    }
}
