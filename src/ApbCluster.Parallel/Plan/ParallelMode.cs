namespace ApbCluster.Parallel.Plan;

/// <summary>How the context is spread over the hosts (see docs/algorithm.md).</summary>
public enum ParallelMode
{
    /// <summary>One host, full causal attention.</summary>
    Dense,
    /// <summary>Exact: KV blocks rotate around the ring, zigzag order.</summary>
    Ring,
    /// <summary>Exact: all-to-all from sequence shards to head shards.</summary>
    Ulysses,
    /// <summary>Anchor = first block, no passing.</summary>
    Star,
    /// <summary>Anchor with the question embedded, compressed passing blocks.</summary>
    Apb,
}
