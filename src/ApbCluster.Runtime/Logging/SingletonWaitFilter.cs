using Akka.Event;

namespace ApbCluster.Runtime.Logging;

/// <summary>
/// Keeps the singleton proxy's "failed to find an associated singleton ... after 30 seconds" only when it is true.
/// The proxy starts its warning timer with no initial delay, so each wait (node start, every hand-over, the
/// node's own exit) logs it at once, before the router had any chance to answer; the same timer then repeats
/// every failure period while the router stays missing. The first warning of a wait is dropped; one that
/// follows the previous by about a period is the proxy still waiting, and is kept.
/// </summary>
public sealed class SingletonWaitFilter(TimeSpan period) : LogFilterBase
{
    private const string Message = "ClusterSingletonProxy failed to find an associated singleton";
    private readonly Lock _gate = new();
    private readonly Dictionary<string, (DateTime At, LogFilterDecision Decision)> _last = [];

    public override LogFilterType FilterType => LogFilterType.Content;

    public override LogFilterDecision ShouldKeepMessage(LogEvent content, string? expandedMessage = null)
    {
        if (expandedMessage is null) return LogFilterDecision.NoDecision;
        if (content is not Warning || !expandedMessage.Contains(Message, StringComparison.Ordinal)) return LogFilterDecision.Keep;
        return Decide(content.LogSource, content.Timestamp);
    }

    /// <summary>The decision for the proxy warning of <paramref name="source"/> logged at <paramref name="at"/>.</summary>
    public LogFilterDecision Decide(string source, DateTime at)
    {
        lock (_gate)
        {
            // Every logger (stdout and the ring buffer) asks about the same event: answer it once.
            bool seen = _last.TryGetValue(source, out var last);
            if (seen && last.At == at) return last.Decision;
            var gap = seen ? at - last.At : TimeSpan.MaxValue;
            // A late timer on a loaded machine stretches the gap; another wait starting soon after one ended shortens it.
            var decision = gap >= period * 0.9 && gap <= period * 1.5 ? LogFilterDecision.Keep : LogFilterDecision.Drop;
            _last[source] = (at, decision);
            return decision;
        }
    }
}
