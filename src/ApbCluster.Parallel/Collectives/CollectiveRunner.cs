using ApbCluster.NativeInterop;
using System.Runtime.ExceptionServices;

namespace ApbCluster.Parallel.Collectives;

/// <summary>Runs one body per rank, each on its own thread (ranks block in collectives, so not the thread pool).</summary>
public static class CollectiveRunner
{
    /// <summary>Results in rank order, each rank on a new thread. On the first exception the in-process group is aborted
    /// (so the other ranks fail fast instead of waiting out the deadline); the root cause is rethrown with its stack:
    /// the first exception that is not merely another rank noticing the abort.</summary>
    public static T[] Run<T>(IReadOnlyList<ICollective> ranks, Func<ICollective, T> body) =>
        Run(ranks, body, (rank, work) => new Thread(() => work()) { IsBackground = true, Name = $"rank-{rank}" }.Start());

    /// <summary>As <see cref="Run{T}(IReadOnlyList{ICollective}, Func{ICollective, T})"/>, with each rank's work started by
    /// <paramref name="start"/> (a new thread, or a persistent one: <see cref="RankThreads"/>).</summary>
    internal static T[] Run<T>(IReadOnlyList<ICollective> ranks, Func<ICollective, T> body, Action<int, Action> start)
    {
        var results = new T[ranks.Count];
        var failures = new List<ExceptionDispatchInfo>();
        using var done = new CountdownEvent(ranks.Count);
        for (int i = 0; i < ranks.Count; i++)
        {
            int rank = i;
            var c = ranks[rank];
            start(rank, () =>
            {
                try { results[rank] = body(c); }
                catch (Exception e)
                {
                    lock (failures) failures.Add(ExceptionDispatchInfo.Capture(e));
                    if (Unwrap(c) is InProcessCollective ip) ip.AbortGroup($"rank {c.Rank} failed: {e.Message}");
                }
                finally { done.Signal(); }
            });
        }
        done.Wait();
        if (failures.Count > 0)
            (failures.FirstOrDefault(f => f.SourceException is not CollectiveException { Aborted: true }) ?? failures[0]).Throw();
        return results;
    }

    private static ICollective Unwrap(ICollective c) => c is IDecoratedCollective decorated ? Unwrap(decorated.Inner) : c;

    /// <summary>Disposes every rank at once, each on its own thread: tearing down a communicator may wait for
    /// its peers (NCCL finalize), so one-by-one on a single thread could stall until the deadline.</summary>
    public static void DisposeAll(IReadOnlyList<ICollective> ranks) =>
        Run(ranks, c => { c.Dispose(); return 0; });
}

/// <summary>A collective that wraps another (so the runner can find an in-process group to abort).</summary>
public interface IDecoratedCollective
{
    ICollective Inner { get; }
}

/// <summary>
/// One long-lived thread per rank. libtorch keeps per-thread state (cuDNN's graph cache among it), so ranks that run
/// on new threads every time pay for rebuilding it on each run while code on a long-lived thread does not: a
/// benchmark gives every mode the same warm threads with this.
/// </summary>
public sealed class RankThreads : IDisposable
{
    private readonly System.Collections.Concurrent.BlockingCollection<Action>[] _queues;
    private readonly Thread[] _threads;

    public RankThreads(int ranks)
    {
        _queues = Enumerable.Range(0, ranks).Select(_ => new System.Collections.Concurrent.BlockingCollection<Action>()).ToArray();
        _threads = Enumerable.Range(0, ranks).Select(r => new Thread(() =>
        {
            foreach (var work in _queues[r].GetConsumingEnumerable()) work();
        }) { IsBackground = true, Name = $"rank-{r}" }).ToArray();
        foreach (var t in _threads) t.Start();
    }

    public int Count => _threads.Length;

    /// <summary>As <see cref="CollectiveRunner.Run{T}(IReadOnlyList{ICollective}, Func{ICollective, T})"/>, rank i on thread i.</summary>
    public T[] Run<T>(IReadOnlyList<ICollective> ranks, Func<ICollective, T> body)
    {
        if (ranks.Count != Count) throw new ArgumentException($"{ranks.Count} ranks for {Count} threads.");
        return CollectiveRunner.Run(ranks, body, (rank, work) => _queues[rank].Add(work));
    }

    public void Dispose()
    {
        foreach (var q in _queues) q.CompleteAdding();
        foreach (var t in _threads) t.Join();
        foreach (var q in _queues) q.Dispose();
    }
}
