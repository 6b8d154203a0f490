namespace ApbCluster.Parallel.Serving;

/// <summary>
/// One host's <see cref="PrefillPolicy"/>: the queries it runs each hold a <see cref="Turn"/>; a decoding query reports
/// each step, and a prefilling query passes <see cref="Turn.BeforePrefillLayer"/> before each of its layers. Under
/// decode-first that call waits until every query that was decoding when it came has produced one more token (or
/// ended): the decodes waiting behind a long prefill get the device between its layers, and since the wait is for one
/// step of the decodes running at that moment, not for the decodes to go idle, a prefill cannot starve. Decodes never
/// wait here, so the gate adds no cycle to what the queries already wait on (their collectives).
/// Thread-safe: each query's turn is used from that query's own thread.
/// </summary>
public sealed class PrefillGate(PrefillPolicy policy)
{
    private readonly object _lock = new();
    private readonly HashSet<Turn> _running = [];
    private long _yields;
    private int _waiting;
    private long _wakeups;
    private long _yieldTicks;

    public PrefillPolicy Policy { get; } = policy;

    /// <summary>Prefill layers that waited for decodes, since the gate was made.</summary>
    public long Yields => Interlocked.Read(ref _yields);

    /// <summary>Time prefills spent waiting for decodes, since the gate was made.</summary>
    public TimeSpan YieldTime => TimeSpan.FromTicks(Interlocked.Read(ref _yieldTicks));

    /// <summary>Prefills waiting for decodes now.</summary>
    public int Waiting { get { lock (_lock) return _waiting; } }

    /// <summary>Prefills waiting now, and how often a waiting prefill has woken to look again, read together: a prefill
    /// that woke and found its decodes done has already left <c>Waiting</c> (tests rely on that).</summary>
    internal (int Waiting, long Wakeups) Snapshot() { lock (_lock) return (_waiting, _wakeups); }

    /// <summary>A query starts on this host; dispose the turn when it ends, however it ends.</summary>
    public Turn Enter()
    {
        var turn = new Turn(this);
        lock (_lock) _running.Add(turn);
        return turn;
    }

    public sealed class Turn : IDisposable
    {
        private readonly PrefillGate _gate;
        private long _steps; // tokens produced; guarded by the gate's lock
        private bool _ended;

        internal Turn(PrefillGate gate) => _gate = gate;

        /// <summary>This query produced a token: it is decoding, and one more of its steps is done.</summary>
        public void Decoded()
        {
            lock (_gate._lock)
            {
                _steps++;
                Monitor.PulseAll(_gate._lock);
            }
        }

        /// <summary>This query's prefill is about to run a layer. Under decode-first, waits for one step of each query
        /// decoding now; returns at once under concurrent or when none decodes. Cancellation ends the wait with
        /// <see cref="OperationCanceledException"/>.</summary>
        public void BeforePrefillLayer(CancellationToken ct)
        {
            if (_gate.Policy != PrefillPolicy.DecodeFirst) return;
            var gate = _gate;
            // Registered outside the lock: disposing a registration waits for a running callback, which takes the lock.
            using var wake = ct.Register(() => { lock (gate._lock) Monitor.PulseAll(gate._lock); });
            lock (gate._lock)
            {
                var owed = gate._running.Where(t => t != this && t._steps > 0).Select(t => (Turn: t, Before: t._steps)).ToList();
                if (owed.Count == 0) return;
                var started = System.Diagnostics.Stopwatch.GetTimestamp();
                gate._waiting++;
                try
                {
                    while (owed.Any(o => !o.Turn._ended && o.Turn._steps == o.Before))
                    {
                        ct.ThrowIfCancellationRequested();
                        Monitor.Wait(gate._lock);
                        gate._wakeups++;
                    }
                }
                finally { gate._waiting--; }
                Interlocked.Increment(ref gate._yields);
                Interlocked.Add(ref gate._yieldTicks, System.Diagnostics.Stopwatch.GetElapsedTime(started).Ticks);
            }
        }

        public void Dispose()
        {
            lock (_gate._lock)
            {
                if (_ended) return;
                _ended = true;
                _gate._running.Remove(this);
                Monitor.PulseAll(_gate._lock);
            }
        }
    }
}
