using System.Collections.Concurrent;

namespace ApbCluster.Parallel.Collectives;

/// <summary>
/// Bytes moved per (operation, label), so a benchmark can check that passing moved what the plan says.
/// Counts payload as this rank sees it: an all-gather of b bytes sends b to each of the H-1 others and
/// receives b from each; a broadcast root sends b to H-1 ranks; copies to itself are not counted.
/// Thread-safe: one instance may be shared by all ranks of a group.
/// </summary>
public sealed class CollectiveTraffic
{
    private readonly ConcurrentDictionary<(string Operation, string What), Counter> _counters = new();

    public void Add(string operation, string what, long bytesSent, long bytesReceived)
    {
        var c = _counters.GetOrAdd((operation, what), _ => new Counter());
        Interlocked.Increment(ref c.Calls);
        Interlocked.Add(ref c.Sent, bytesSent);
        Interlocked.Add(ref c.Received, bytesReceived);
    }

    /// <summary>Per (operation, label) totals, sorted for stable logs.</summary>
    public IReadOnlyList<TrafficEntry> Snapshot() => _counters
        .Select(kv => new TrafficEntry(kv.Key.Operation, kv.Key.What,
            Interlocked.Read(ref kv.Value.Calls), Interlocked.Read(ref kv.Value.Sent), Interlocked.Read(ref kv.Value.Received)))
        .OrderBy(e => e.Operation, StringComparer.Ordinal).ThenBy(e => e.What, StringComparer.Ordinal)
        .ToList();

    public long TotalSent => _counters.Values.Sum(c => Interlocked.Read(ref c.Sent));
    public long TotalReceived => _counters.Values.Sum(c => Interlocked.Read(ref c.Received));

    /// <summary>Sum over labels that satisfy <paramref name="filter"/> (e.g. every label containing "passing").</summary>
    public (long Sent, long Received) Total(Func<TrafficEntry, bool> filter)
    {
        var picked = Snapshot().Where(filter).ToList();
        return (picked.Sum(e => e.BytesSent), picked.Sum(e => e.BytesReceived));
    }

    /// <summary>Bytes all ranks sent during prefill and during Phase 2 (whose labels say "phase-2").</summary>
    public (long Prefill, long Phase2) SentByPhase()
    {
        var phase2 = Total(e => e.What.Contains("phase-2", StringComparison.Ordinal)).Sent;
        return (TotalSent - phase2, phase2);
    }

    public void Reset() => _counters.Clear();

    private sealed class Counter
    {
        public long Calls, Sent, Received;
    }
}

public readonly record struct TrafficEntry(string Operation, string What, long Calls, long BytesSent, long BytesReceived);
