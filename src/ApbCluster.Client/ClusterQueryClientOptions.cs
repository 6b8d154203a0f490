namespace ApbCluster.Client;

public sealed record ClusterQueryClientOptions
{
    /// <summary>The cluster's ActorSystem name (APB_SYSTEM_NAME of the nodes).</summary>
    public string SystemName { get; init; } = "apb";

    /// <summary>Address this client binds for replies; cluster nodes must reach it.</summary>
    public string Hostname { get; init; } = "127.0.0.1";

    /// <summary>0 = any free port.</summary>
    public int Port { get; init; }

    /// <summary>
    /// A query with no message from the cluster for this long fails on the client side (e.g. the
    /// router node died with the query in flight). Prefill progress arrives per layer, tokens per step.
    /// </summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>After a cancellation, how long to wait for the router's QueryCancelled.</summary>
    public TimeSpan CancelTimeout { get; init; } = TimeSpan.FromSeconds(5);
}
