using Akka.Actor;

namespace ApbCluster.Runtime.Hosting;

/// <summary>
/// apb-node's exit codes. A node that the cluster threw out (downed by the split-brain resolver, or
/// it never reached a seed) exits non-zero so that a supervisor's on-failure restart brings it back as a
/// new incarnation; one that was asked to stop (SIGTERM, Ctrl+C, <c>cluster leave</c>) exits 0. One whose host the
/// router refused (join secret, model) exits 4: restarting it as it is will not help, an operator must fix it.
/// </summary>
public static class NodeExitCodes
{
    public const int Ok = 0;
    public const int StartupFailed = 1;
    public const int BadConfiguration = 2;
    public const int RemovedByCluster = 3;
    public const int RefusedByRouter = 4;

    /// <summary>The exit code for the reason coordinated shutdown ran (null: the system terminated without it).</summary>
    public static int For(CoordinatedShutdown.Reason? reason) => reason switch
    {
        CoordinatedShutdown.ClrExitReason or CoordinatedShutdown.ClusterLeavingReason => Ok,
        null => Ok,
        JoinRefusedReason => RefusedByRouter,
        _ => RemovedByCluster,
    };

    public static string Describe(CoordinatedShutdown.Reason? reason) => reason switch
    {
        CoordinatedShutdown.ClusterDowningReason => "this node was downed by the cluster",
        CoordinatedShutdown.ClusterJoinUnsuccessfulReason => "no seed node answered within shutdown-after-unsuccessful-join-seed-nodes",
        CoordinatedShutdown.ClrExitReason => "stop requested",
        JoinRefusedReason refused => $"the router refused this node's host: {refused.Message}",
        CoordinatedShutdown.ClusterLeavingReason => "left the cluster",
        null => "actor system terminated",
        _ => reason.GetType().Name,
    };
}

/// <summary>Coordinated shutdown because the router refused one of this node's hosts (<see cref="Contracts.HostRefused"/>).</summary>
public sealed class JoinRefusedReason(string message) : CoordinatedShutdown.Reason
{
    public string Message { get; } = message;

    public override int ExitCode => NodeExitCodes.RefusedByRouter;
}
