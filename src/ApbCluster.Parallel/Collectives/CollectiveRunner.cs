using ApbCluster.NativeInterop;
using System.Runtime.ExceptionServices;

namespace ApbCluster.Parallel.Collectives;

/// <summary>Runs one body per rank, each on its own thread (ranks block in collectives, so not the thread pool).</summary>
public static class CollectiveRunner
{
    /// <summary>Results in rank order. On the first exception the in-process group is aborted (so the other ranks
    /// fail fast instead of waiting out the deadline); the root cause is rethrown with its stack: the first
    /// exception that is not merely another rank noticing the abort.</summary>
    public static T[] Run<T>(IReadOnlyList<ICollective> ranks, Func<ICollective, T> body)
    {
        var results = new T[ranks.Count];
        var failures = new List<ExceptionDispatchInfo>();
        var threads = ranks.Select((c, i) => new Thread(() =>
        {
            try { results[i] = body(c); }
            catch (Exception e)
            {
                lock (failures) failures.Add(ExceptionDispatchInfo.Capture(e));
                if (Unwrap(c) is InProcessCollective ip) ip.AbortGroup($"rank {c.Rank} failed: {e.Message}");
            }
        }) { IsBackground = true, Name = $"rank-{c.Rank}" }).ToArray();
        foreach (var t in threads) t.Start();
        foreach (var t in threads) t.Join();
        if (failures.Count > 0)
            (failures.FirstOrDefault(f => f.SourceException is not CollectiveException { Aborted: true }) ?? failures[0]).Throw();
        return results;
    }

    private static ICollective Unwrap(ICollective c) => c is CountingCollective counted ? Unwrap(counted.Inner) : c;

    /// <summary>Disposes every rank at once, each on its own thread: tearing down a communicator may wait for
    /// its peers (NCCL finalize), so one-by-one on a single thread could stall until the deadline.</summary>
    public static void DisposeAll(IReadOnlyList<ICollective> ranks) =>
        Run(ranks, c => { c.Dispose(); return 0; });
}
