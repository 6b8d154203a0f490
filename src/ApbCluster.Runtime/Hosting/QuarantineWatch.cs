using Akka.Actor;
using Akka.Event;
using Akka.Remote;

namespace ApbCluster.Runtime.Hosting;

/// <summary>
/// A node that was frozen (SIGSTOP, a partition) while the others downed and removed it comes back believing it is
/// still a member; the first peer it reaches answers that it quarantined this system. No member will talk to this
/// incarnation again, so it stops (exit 3) and its supervisor starts a new one that joins. Without this, the thawed
/// node could go on alone, downing the others on its side.
/// </summary>
public sealed class QuarantineWatch : ReceiveActor
{
    public QuarantineWatch()
    {
        Receive<ThisActorSystemQuarantinedEvent>(e =>
        {
            Context.GetLogger().Error("node {0} quarantined this system (it was removed from the cluster): stopping so that a new incarnation can join", e.RemoteAddress);
            _ = CoordinatedShutdown.Get(Context.System).Run(CoordinatedShutdown.ClusterDowningReason.Instance);
        });
    }

    protected override void PreStart() => Context.System.EventStream.Subscribe(Self, typeof(ThisActorSystemQuarantinedEvent));

    protected override void PostStop() => Context.System.EventStream.Unsubscribe(Self);

    public static Props Props() => Akka.Actor.Props.Create(() => new QuarantineWatch());
}
