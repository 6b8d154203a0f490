namespace ApbCluster.Parallel.Serving;

/// <summary>
/// How a host runs a new query's prefill while other queries on it decode (apb.gpu-host.prefill-policy).
/// The trade-off is the running queries' inter-token latency against the new query's time to first token.
/// </summary>
public enum PrefillPolicy
{
    /// <summary>Prefill and decodes run side by side: the prefill finishes soonest, decodes slow down while it runs.</summary>
    Concurrent,

    /// <summary>Before each prefill layer the prefill lets every running decode finish one step: a decode gets a token
    /// out per prefill layer at worst, and the prefill waits at most one decode step per layer (it cannot starve).</summary>
    DecodeFirst,
}

/// <summary>The configuration words of <see cref="PrefillPolicy"/>.</summary>
public static class PrefillPolicies
{
    public const string Words = "concurrent or decode-first";

    public static bool TryParse(string? word, out PrefillPolicy policy)
    {
        switch (word?.Trim().ToLowerInvariant())
        {
            case "concurrent": policy = PrefillPolicy.Concurrent; return true;
            case "decode-first": policy = PrefillPolicy.DecodeFirst; return true;
            default: policy = default; return false;
        }
    }

    public static string Word(this PrefillPolicy policy) => policy switch
    {
        PrefillPolicy.Concurrent => "concurrent",
        PrefillPolicy.DecodeFirst => "decode-first",
        _ => throw new ArgumentOutOfRangeException(nameof(policy), policy, null),
    };
}
