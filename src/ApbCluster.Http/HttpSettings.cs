namespace ApbCluster.Http;

/// <summary>
/// Where the front door listens and the limits it enforces before a request reaches the router. The node binds them
/// from its configuration (apb.http.*, apb.limits.*), which is where the keys, defaults and overrides live; the
/// messages here name those keys so a refused caller knows what to change.
/// </summary>
public sealed record HttpSettings
{
    /// <summary>Bind address (apb.http.host): loopback unless configured.</summary>
    public required string Host { get; init; }

    /// <summary>apb.http.port; 0 asks the system for a free port.</summary>
    public required int Port { get; init; }

    /// <summary>apb.limits.max-context-chars: the longest document, in characters.</summary>
    public required int MaxContextChars { get; init; }

    /// <summary>apb.limits.max-new-tokens: the most tokens one request may ask for.</summary>
    public required int MaxNewTokens { get; init; }

    /// <summary>apb.limits.max-concurrent-queries: requests beyond it get 429.</summary>
    public required int MaxConcurrentQueries { get; init; }

    /// <summary>apb.limits.request-timeout: a query still running then is cancelled (504).</summary>
    public required TimeSpan RequestTimeout { get; init; }

    /// <summary>apb.http.router-wait: how long a new request waits for the router singleton during a failover.</summary>
    public required TimeSpan RouterWait { get; init; }
}
