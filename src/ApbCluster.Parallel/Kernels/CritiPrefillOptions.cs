namespace ApbCluster.Parallel.Kernels;

/// <summary>
/// CritiPrefill's parameters (SPEC-critiprefill.md; defaults as the reference): query segments of
/// <see cref="Segment"/> rows choose the top <see cref="Budget"/>/<see cref="Block"/> key blocks of their past;
/// segments starting before <see cref="Threshold"/> (a global position) attend in full. From layer
/// <see cref="UnfusedLayers"/> on, a layer's block scores are <see cref="FusionPrevious"/> x the previous layer's
/// plus <see cref="FusionCurrent"/> x its own.
/// </summary>
public sealed record CritiPrefillOptions
{
    public int Segment { get; init; } = 512;
    public int Block { get; init; } = 32;
    public int Budget { get; init; } = 2048;
    public int Threshold { get; init; } = 4096;
    public double FusionPrevious { get; init; } = 0.25;
    public double FusionCurrent { get; init; } = 0.75;
    public int UnfusedLayers { get; init; } = 2;

    /// <summary>Key blocks each pruned segment keeps from its past.</summary>
    public int BudgetBlocks => Budget / Block;

    /// <summary>
    /// Checks every parameter and returns this; a bad one is a <see cref="CritiPrefillOptionsException"/> naming it
    /// as the caller spells it: <paramref name="prefix"/> + "segment" ("--criti-segment" on the command line,
    /// "apb.router.criti-segment" in HOCON, "criti_segment" in a request's "apb" object).
    /// </summary>
    public CritiPrefillOptions Validate(string prefix = "--criti-")
    {
        string Name(string key) => prefix + (prefix.EndsWith('_') ? key.Replace('-', '_') : key);
        void Positive(string key, int value)
        {
            if (value <= 0) throw new CritiPrefillOptionsException(Name(key), $"{Name(key)} {value}: must be positive.");
        }
        Positive("block", Block);
        Positive("segment", Segment);
        Positive("budget", Budget);
        if (Threshold < 0)
            throw new CritiPrefillOptionsException(Name("threshold"), $"{Name("threshold")} {Threshold}: must be 0 or more (0 prunes from the first segment on).");
        if (Segment % Block != 0)
            throw new CritiPrefillOptionsException(Name("segment"), $"{Name("segment")} {Segment}: must be a multiple of {Name("block")} ({Block}).");
        if (Budget % Block != 0)
            throw new CritiPrefillOptionsException(Name("budget"), $"{Name("budget")} {Budget}: must be a multiple of {Name("block")} ({Block}).");
        if (!(FusionPrevious >= 0 && FusionCurrent >= 0 && FusionPrevious + FusionCurrent > 0) || double.IsInfinity(FusionPrevious + FusionCurrent))
            throw new CritiPrefillOptionsException(Name("fusion"), $"{Name("fusion")} weights {FusionPrevious}/{FusionCurrent}: must be finite, 0 or more, not both 0.");
        if (UnfusedLayers < 0)
            throw new CritiPrefillOptionsException(Name("unfused-layers"), $"{Name("unfused-layers")} {UnfusedLayers}: must be 0 or more.");
        return this;
    }

    public override string ToString() => $"critiprefill (segment {Segment}, block {Block}, budget {Budget}, threshold {Threshold})";
}

/// <summary>A CritiPrefill parameter is out of range; the message names the option as the caller spells it.</summary>
public sealed class CritiPrefillOptionsException(string option, string message) : ArgumentException(message)
{
    public string Option { get; } = option;
}
