using Akka.Actor;

namespace ApbCluster.Runtime.Hosting;

/// <summary>
/// apb-node's exit codes. A node that the cluster threw out (downed by the split-brain resolver, or
/// it never reached a seed) exits non-zero so that a supervisor's on-failure restart brings it back as a
/// new incarnation; one that was asked to stop (SIGTERM, Ctrl+C, <c>cluster leave</c>) exits 0.
/// </summary>
public static class NodeExitCodes
{
    public const int Ok = 0;
    public const int StartupFailed = 1;
    public const int BadConfiguration = 2;
    public const int RemovedByCluster = 3;

    /// <summary>The exit code for the reason coordinated shutdown ran (null: the system terminated without it).</summary>
    public static int For(CoordinatedShutdown.Reason? reason) => reason switch
    {
        CoordinatedShutdown.ClrExitReason or CoordinatedShutdown.ClusterLeavingReason => Ok,
        null => Ok,
        _ => RemovedByCluster,
    };

    public static string Describe(CoordinatedShutdown.Reason? reason) => reason switch
    {
        CoordinatedShutdown.ClusterDowningReason => "this node was downed by the cluster",
        CoordinatedShutdown.ClusterJoinUnsuccessfulReason => "no seed node answered within shutdown-after-unsuccessful-join-seed-nodes",
        CoordinatedShutdown.ClrExitReason => "stop requested",
        CoordinatedShutdown.ClusterLeavingReason => "left the cluster",
        null => "actor system terminated",
        _ => reason.GetType().Name,
    };
}
