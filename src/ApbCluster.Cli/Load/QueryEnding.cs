using ApbCluster.Contracts;

namespace ApbCluster.Cli.Load;

/// <summary>Why a load query ended without an answer, in the words every load mode prints.</summary>
internal static class QueryEnding
{
    public const string NoAnswer = "the cluster ended the query without an answer";

    /// <summary>The reason <paramref name="e"/> ends the query, or null when it does not end it with a failure.
    /// <paramref name="timedOut"/>: the query's own bound (--query-timeout) ran out, not the caller's token.</summary>
    public static string? Failure(object e, bool timedOut, TimeSpan queryBound) => e switch
    {
        QueryFailed f => $"failed{(f.FailingHost is null ? "" : " on " + f.FailingHost)}: {f.Reason}",
        RouterBusy b => $"refused: the router's queue is full ({b.QueueDepth} of {b.QueueCapacity})",
        QueryCancelled => timedOut ? $"no answer within {queryBound.TotalSeconds:0} s (--query-timeout); cancelled" : "cancelled",
        _ => null,
    };
}
