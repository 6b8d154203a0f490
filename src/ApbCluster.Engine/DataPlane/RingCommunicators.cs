using ApbCluster.Contracts;
using ApbCluster.Parallel.Collectives;

namespace ApbCluster.Engine.DataPlane;

/// <summary>Joins one rank of an NCCL ring (blocking, on the calling thread; <paramref name="ct"/> aborts a
/// join still waiting for the other ranks).</summary>
public delegate IAbortableCollective RingJoin(byte[] ncclUniqueId, int rank, int worldSize, TimeSpan deadline, CancellationToken ct);

/// <summary>
/// One host's warm NCCL communicator, kept across queries for the ring (ordered hosts) the router named.
/// Making a communicator costs hundreds of milliseconds to seconds, so a query on the same ring reuses it;
/// the router checks first that every member holds it (<see cref="IsReady"/>), and every query starts with a
/// handshake (<see cref="RingHandshake"/>), so a rank can never pair with ranks of another query or ring.
/// <para>Rules: at most one communicator (joining a new ring aborts the old one); a run that does not end
/// cleanly (failure, cancel, abort, handshake mismatch) aborts it with ncclCommAbort and drops it; so does
/// <see cref="Drop"/> (the router gave up the ring). Aborts are carried out by the thread that uses the
/// communicator (a run in progress gets <see cref="IAbortableCollective.RequestAbort"/>), or, when it is idle,
/// on a background thread so the host actor never blocks on NCCL.</para>
/// Thread-safe: the host actor asks and drops, the shard thread acquires and releases.
/// </summary>
public sealed class RingCommunicators : IDisposable
{
    internal sealed class Entry(string ringId, IAbortableCollective comm)
    {
        public string RingId { get; } = ringId;
        public IAbortableCollective Comm { get; } = comm;
        public bool InUse { get; set; }
        public bool Dropped { get; set; }
    }

    private const int RememberDropped = 64;

    private readonly object _gate = new();
    private readonly RingJoin _join;
    private readonly Queue<string> _droppedOrder = new();
    private readonly HashSet<string> _dropped = new(StringComparer.Ordinal);
    private Entry? _cached;
    private Task _background = Task.CompletedTask;
    private bool _disposed;

    public RingCommunicators(RingJoin join) => _join = join;

    /// <summary>Counters for logs and tests: communicators joined, and queries that reused one.</summary>
    public int Joins { get; private set; }

    public int Reuses { get; private set; }

    /// <summary>The ring of the communicator held now (in use or idle), or null.</summary>
    public string? CurrentRing
    {
        get { lock (_gate) return _cached?.RingId; }
    }

    /// <summary>The answer to the router's <see cref="NcclRingCheck"/>: this ring's communicator is held, healthy and idle.
    /// In use means the previous query on it has not ended cleanly yet (a clean end releases it before the host
    /// reports ShardFinished), so the router forms a new ring rather than wait.</summary>
    public bool IsReady(string ringId)
    {
        lock (_gate)
            return _cached is { } e && e.RingId == ringId && !e.InUse && !e.Dropped && !e.Comm.IsAborted;
    }

    /// <summary>
    /// The communicator for <paramref name="ring"/>, marked in use until the lease ends. Reuse: the held
    /// one, or <see cref="RingMissingException"/> when it is gone. Join: aborts any held communicator, then joins
    /// (blocking until every rank joined or the deadline). Call on the thread that will use it.
    /// </summary>
    public RingLease Acquire(string queryId, ShardRing ring, CancellationToken ct)
    {
        var deadline = TimeSpan.FromMilliseconds(ring.CollectiveTimeoutMs);
        Entry? old;
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (ring.NcclReuse)
            {
                if (_cached is not { } e || e.RingId != ring.NcclRingId || e.Dropped || e.Comm.IsAborted)
                    throw new RingMissingException(ring.NcclRingId, _cached?.RingId);
                if (e.InUse) throw new InvalidOperationException($"the communicator of ring {e.RingId} is already in use by another run");
                e.InUse = true;
                e.Comm.Deadline = deadline;
                Reuses++;
                return new RingLease(this, e, reused: true);
            }
            if (_cached is { InUse: true } busy)
                throw new InvalidOperationException($"the communicator of ring {busy.RingId} is still in use; cannot join ring {ring.NcclRingId}");
            old = _cached;
            _cached = null;
        }
        if (old is not null) AbortQuietly(old.Comm, $"replaced by ring {ring.NcclRingId}");
        // One NCCL teardown or setup at a time in this process: wait for a dropped communicator's abort.
        Task background;
        lock (_gate) background = _background;
        background.Wait(deadline);
        if (ring.NcclUniqueId is not { } id) throw new ArgumentException($"RunShard {queryId} joins ring {ring.NcclRingId} without an NCCL unique id");
        var comm = _join(id, ring.Rank, ring.WorldSize, deadline, ct);
        string? refused = null;
        lock (_gate)
        {
            if (_disposed) refused = "the host is stopping";
            else if (_dropped.Contains(ring.NcclRingId)) refused = $"ring {ring.NcclRingId} was dropped while joining";
            else
            {
                var entry = new Entry(ring.NcclRingId, comm) { InUse = true };
                _cached = entry;
                Joins++;
                return new RingLease(this, entry, reused: false);
            }
        }
        AbortQuietly(comm, refused);
        throw new OperationCanceledException(refused);
    }

    /// <summary>The router gave up <paramref name="ringId"/>: an idle communicator is aborted now (on a background
    /// thread), one in use is asked to abort (its run fails and the lease drops it). Unknown rings are remembered,
    /// so a join still in progress for it is aborted when it completes.</summary>
    public void Drop(string ringId, string reason)
    {
        Entry? idle = null;
        lock (_gate)
        {
            Remember(ringId);
            if (_cached is not { } e || e.RingId != ringId) return;
            e.Dropped = true;
            if (e.InUse) e.Comm.RequestAbort(reason);
            else
            {
                idle = e;
                _cached = null;
            }
        }
        if (idle is null) return;
        lock (_gate) _background = _background.ContinueWith(_ => AbortQuietly(idle.Comm, reason), CancellationToken.None,
            TaskContinuationOptions.LongRunning, TaskScheduler.Default);
    }

    /// <summary>Completes when every abort started by <see cref="Drop"/> has finished (tests, orderly shutdown).</summary>
    public bool WaitForBackground(TimeSpan timeout)
    {
        Task background;
        lock (_gate) background = _background;
        return background.Wait(timeout);
    }

    internal void Release(Entry entry, bool clean, string reason)
    {
        bool drop;
        lock (_gate)
        {
            entry.InUse = false;
            drop = !clean || entry.Dropped || _disposed || entry.Comm.IsAborted;
            if (drop && ReferenceEquals(_cached, entry)) _cached = null;
        }
        if (drop) AbortQuietly(entry.Comm, reason); // on the thread that used it
    }

    /// <summary>Aborts the held communicator (stopping host): idle now, in use through its run.</summary>
    public void Dispose()
    {
        Entry? idle = null;
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            if (_cached is { } e)
            {
                if (e.InUse) e.Comm.RequestAbort("the host is stopping");
                else
                {
                    idle = e;
                    _cached = null;
                }
            }
        }
        if (idle is not null) AbortQuietly(idle.Comm, "the host is stopping");
    }

    private void Remember(string ringId)
    {
        if (!_dropped.Add(ringId)) return;
        _droppedOrder.Enqueue(ringId);
        if (_droppedOrder.Count > RememberDropped) _dropped.Remove(_droppedOrder.Dequeue());
    }

    private static void AbortQuietly(IAbortableCollective comm, string reason)
    {
        try { comm.Abort(reason); }
        catch (Exception) { /* nothing more to do: the communicator is unusable either way */ }
    }

    /// <summary>One run's use of the ring's communicator; <see cref="End"/> returns it (clean) or aborts it.</summary>
    public sealed class RingLease
    {
        private readonly RingCommunicators _owner;
        private readonly Entry _entry;
        private int _ended;

        internal RingLease(RingCommunicators owner, Entry entry, bool reused)
        {
            _owner = owner;
            _entry = entry;
            Reused = reused;
        }

        public IAbortableCollective Collective => _entry.Comm;

        public string RingId => _entry.RingId;

        /// <summary>The communicator was already warm (no join).</summary>
        public bool Reused { get; }

        /// <summary>Clean: kept for the next query on the ring. Otherwise aborted and dropped. Idempotent.</summary>
        public void End(bool clean, string reason = "the run did not end cleanly")
        {
            if (Interlocked.Exchange(ref _ended, 1) == 0) _owner.Release(_entry, clean, reason);
        }
    }
}

/// <summary>A RunShard reuses a ring this host does not hold (any more): the query fails at once, naming the host,
/// and the router forms a new ring for the next one.</summary>
public sealed class RingMissingException(string ringId, string? held)
    : Exception($"no warm NCCL communicator for ring {ringId} (held: {held ?? "none"}); it was dropped after a failure or replaced, and the next query forms a new ring");
