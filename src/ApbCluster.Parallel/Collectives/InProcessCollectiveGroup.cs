using static TorchSharp.torch;

namespace ApbCluster.Parallel.Collectives;

/// <summary>
/// H virtual hosts in one process, one thread per rank: the backend for CPU tests and for strategies run
/// on one machine. Tensors cross ranks by copy, made on the receiving thread (clone, or <c>to(device)</c>
/// when ranks live on different devices): the receiver then owns an independent tensor in its own dispose
/// scope, and the sender may dispose or modify its tensor once the call returns, as with NCCL.
/// </summary>
public static class InProcessCollectiveGroup
{
    /// <summary>One <see cref="ICollective"/> per rank; rank h's tensors live on devices[h] (CPU by default).</summary>
    public static ICollective[] Create(int hosts, TimeSpan deadline, Device[]? devices = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(hosts, 1);
        if (devices != null && devices.Length != hosts)
            throw new ArgumentException($"{devices.Length} devices for {hosts} hosts", nameof(devices));
        var hub = new Rendezvous();
        return Enumerable.Range(0, hosts)
            .Select(r => (ICollective)new InProcessCollective(hub, r, hosts, devices?[r] ?? CPU, deadline))
            .ToArray();
    }

    /// <summary>Aborts the whole group of an in-process rank (thread-safe): every rank waiting in, or later
    /// entering, a collective fails with an aborted <see cref="ApbCluster.NativeInterop.CollectiveException"/>.
    /// False when <paramref name="rank"/> is not an in-process rank.</summary>
    public static bool TryAbortGroup(ICollective rank, string reason)
    {
        if (rank is not InProcessCollective ip) return false;
        ip.AbortGroup(reason);
        return true;
    }

    /// <summary>Creates a group, runs <paramref name="body"/> on every rank in parallel and returns the results
    /// in rank order; the first exception aborts the group and is rethrown.</summary>
    public static T[] Run<T>(int hosts, TimeSpan deadline, Func<ICollective, T> body, Device[]? devices = null)
    {
        var ranks = Create(hosts, deadline, devices);
        try { return CollectiveRunner.Run(ranks, body); }
        finally { CollectiveRunner.DisposeAll(ranks); }
    }
}
