using static TorchSharp.torch;

namespace ApbCluster.Parallel.Collectives;

public static class CollectiveExtensions
{
    /// <summary>All-gather then concatenate along <paramref name="dim"/> (e.g. compressed blocks along the sequence).</summary>
    public static Tensor AllGatherConcat(this ICollective c, Tensor local, long dim, string what)
    {
        var parts = c.AllGather(local, what);
        try { return cat(parts, dim); }
        finally { foreach (var p in parts) p.Dispose(); }
    }

    /// <summary>The next rank along the ring.</summary>
    public static int NextRank(this ICollective c) => (c.Rank + 1) % c.WorldSize;

    /// <summary>The previous rank along the ring.</summary>
    public static int PreviousRank(this ICollective c) => (c.Rank + c.WorldSize - 1) % c.WorldSize;

    /// <summary>Wraps <paramref name="c"/> so its traffic is added to <paramref name="traffic"/>.</summary>
    public static ICollective WithTraffic(this ICollective c, CollectiveTraffic traffic) => new CountingCollective(c, traffic);
}
