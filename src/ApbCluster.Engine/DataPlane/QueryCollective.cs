using ApbCluster.Parallel.Collectives;

namespace ApbCluster.Engine.DataPlane;

/// <summary>
/// One query's data plane on one rank, as the shard thread uses it: the collective, how to stop it from the
/// host actor's thread (<see cref="AbortFromAnyThread"/>) and how to end it (<see cref="End"/>, on the shard
/// thread). A TCP mesh or a one-rank group belongs to the query and is disposed at the end, exactly as before
/// warm rings; an NCCL ring's communicator goes back to <see cref="RingCommunicators"/> after a clean run and
/// is aborted (ncclCommAbort, never finalized) after any other end.
/// </summary>
public sealed class QueryCollective
{
    private readonly Action<string> _abort;
    private readonly Action<bool> _end;
    private int _ended;

    private QueryCollective(ICollective collective, Action<string> abort, Action<bool> end, RingCommunicators.RingLease? ring)
    {
        Collective = collective;
        _abort = abort;
        _end = end;
        Ring = ring;
    }

    public ICollective Collective { get; }

    /// <summary>The NCCL ring lease, or null for a per-query collective (TCP, one rank).</summary>
    public RingCommunicators.RingLease? Ring { get; }

    /// <summary>A collective owned by this query: disposed on abort (from any thread; closing the TCP mesh makes
    /// a rank blocked in a receive and its peers fail at once) and at the end.</summary>
    public static QueryCollective Owned(ICollective collective) =>
        new(collective, _ => collective.Dispose(), _ => collective.Dispose(), null);

    /// <summary>A warm ring's communicator: cancelling <paramref name="ct"/> (the run's abort) asks the shard thread
    /// to abort it; the end returns it to the cache when clean.</summary>
    public static QueryCollective ForRing(RingCommunicators.RingLease lease, CancellationToken ct)
    {
        var registration = ct.Register(() => lease.Collective.RequestAbort("the query was cancelled or aborted"));
        return new QueryCollective(lease.Collective, lease.Collective.RequestAbort, clean =>
        {
            registration.Dispose(); // a later cancel of this run must not reach the next query on the ring
            lease.End(clean);
        }, lease);
    }

    /// <summary>Thread-safe: stops the collective (TCP: closes it; NCCL: the shard thread aborts at its next poll).</summary>
    public void AbortFromAnyThread(string reason) => _abort(reason);

    /// <summary>Shard thread, once: <paramref name="clean"/> when the run completed normally.</summary>
    public void End(bool clean)
    {
        if (Interlocked.Exchange(ref _ended, 1) == 0) _end(clean);
    }
}
