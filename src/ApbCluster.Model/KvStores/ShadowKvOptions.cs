namespace ApbCluster.Model.KvStores;

/// <summary>Where a ShadowKV store keeps the context's values.</summary>
public enum ShadowKvValues
{
    /// <summary>Beside everything else on the model's device: the sparse read is tiny, but V takes half the full KV.</summary>
    Device,
    /// <summary>In host memory (pinned when the device is CUDA): the device keeps only the low-rank keys, landmarks and
    /// exact chunks; each step copies the selected rows over.</summary>
    Host,
}

/// <summary>
/// ShadowKV's parameters (SPEC-shadowkv.md; defaults as the reference): the pre-RoPE keys kept as a rank
/// <see cref="Rank"/> factorisation, landmarks over chunks of <see cref="Chunk"/> tokens, <see cref="Budget"/> tokens
/// rebuilt per KV head and decode step, <see cref="Outliers"/> chunks per KV head and the last <see cref="Local"/>
/// chunks kept exactly.
/// </summary>
public sealed record ShadowKvOptions
{
    public int Rank { get; init; } = 160;
    public int Chunk { get; init; } = 8;
    public int Budget { get; init; } = 2048;
    public int Outliers { get; init; } = 48;
    public int Local { get; init; } = 4;
    public ShadowKvValues Values { get; init; } = ShadowKvValues.Device;

    /// <summary>Chunks each KV head selects per decode step.</summary>
    public int BudgetChunks => Budget / Chunk;

    /// <summary>
    /// Checks every parameter and returns this; a bad one is a <see cref="ShadowKvOptionsException"/> naming it as the
    /// caller spells it: <paramref name="prefix"/> + "rank" ("--shadow-rank" on the command line,
    /// "apb.router.shadow-rank" in HOCON, "shadow_rank" in a request's extension fields).
    /// </summary>
    public ShadowKvOptions Validate(string prefix = "--shadow-")
    {
        string Name(string key) => prefix + (prefix.EndsWith('_') ? key.Replace('-', '_') : key);
        void Positive(string key, int value)
        {
            if (value <= 0) throw new ShadowKvOptionsException(Name(key), $"{Name(key)} {value}: must be positive.");
        }
        void NotNegative(string key, int value)
        {
            if (value < 0) throw new ShadowKvOptionsException(Name(key), $"{Name(key)} {value}: must be 0 or more.");
        }
        Positive("rank", Rank);
        Positive("chunk", Chunk);
        Positive("budget", Budget);
        NotNegative("outliers", Outliers);
        NotNegative("local", Local);
        if (Budget % Chunk != 0)
            throw new ShadowKvOptionsException(Name("budget"), $"{Name("budget")} {Budget}: must be a multiple of {Name("chunk")} ({Chunk}).");
        if (!Enum.IsDefined(Values))
            throw new ShadowKvOptionsException(Name("values"), $"{Name("values")} {(int)Values}: must be device or host.");
        return this;
    }

    public override string ToString() =>
        $"shadowkv (rank {Rank}, chunk {Chunk}, budget {Budget}, outliers {Outliers}, local {Local}, values on {Values.ToString().ToLowerInvariant()})";
}

/// <summary>A ShadowKV parameter is out of range; the message names the option as the caller spells it.</summary>
public sealed class ShadowKvOptionsException(string option, string message) : ArgumentException(message)
{
    public string Option { get; } = option;
}
