using Akka;
using Akka.Actor;
using Akka.Event;

namespace ApbCluster.Client.Logging;

/// <summary>
/// Drops Akka's "Unable to REMOVE channel ... May not shut down cleanly" while this ActorSystem shuts down.
/// The remote transport closes its connection group first and the channels report inactive afterwards, so
/// every exit can print it although nothing is wrong. Outside a shutdown it would mean a real transport
/// fault, and it stays visible.
/// </summary>
public sealed class ShutdownChannelNoiseFilter : LogFilterBase
{
    private const string Message = "Unable to REMOVE channel";
    private volatile bool _shuttingDown;

    public override LogFilterType FilterType => LogFilterType.Content;

    public override LogFilterDecision ShouldKeepMessage(LogEvent content, string? expandedMessage = null)
    {
        if (expandedMessage is null) return LogFilterDecision.NoDecision;
        return _shuttingDown && content is Warning && expandedMessage.Contains(Message, StringComparison.Ordinal)
            ? LogFilterDecision.Drop
            : LogFilterDecision.Keep;
    }

    /// <summary>Starts dropping when <paramref name="system"/>'s coordinated shutdown begins (Terminate runs it too).</summary>
    public void Watch(ActorSystem system) =>
        CoordinatedShutdown.Get(system).AddTask(CoordinatedShutdown.PhaseBeforeServiceUnbind, "quiet-closing-channels", () =>
        {
            _shuttingDown = true;
            return Task.FromResult(Done.Instance);
        });
}
