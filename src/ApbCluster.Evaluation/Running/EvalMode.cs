namespace ApbCluster.Evaluation.Running;

/// <summary>The attention modes an eval compares; APB variants differ in compressor or in an ablated part.</summary>
/// <summary>Dense and star baselines; APB with each compressor; the paper's ablations (no anchor, no passing block,
/// and an anchor without the embedded question: the plain document start); dense and APB (retaining heads) with
/// CritiPrefill's pruned prefill attention; dense and APB (retaining heads) decoding from a ShadowKV store per host.</summary>
public enum EvalMode { Dense, Star, ApbQuery, ApbRetaining, ApbRandom, ApbNoAnchor, ApbNoPassing, ApbPlainAnchor, DenseCriti, ApbCriti, DenseShadowKv, ApbShadowKv }

public static class EvalModes
{
    public static readonly IReadOnlyList<EvalMode> All = Enum.GetValues<EvalMode>();

    public static string Name(this EvalMode m) => m switch
    {
        EvalMode.Dense => "dense",
        EvalMode.Star => "star",
        EvalMode.ApbQuery => "apb-query",
        EvalMode.ApbRetaining => "apb-retaining",
        EvalMode.ApbRandom => "apb-random",
        EvalMode.ApbNoAnchor => "apb-no-anchor",
        EvalMode.ApbNoPassing => "apb-no-passing",
        EvalMode.ApbPlainAnchor => "apb-plain-anchor",
        EvalMode.DenseCriti => "dense-criti",
        EvalMode.ApbCriti => "apb-criti",
        EvalMode.DenseShadowKv => "dense-shadowkv",
        EvalMode.ApbShadowKv => "apb-shadowkv",
        _ => throw new ArgumentOutOfRangeException(nameof(m)),
    };

    public static EvalMode Parse(string name)
    {
        foreach (var m in All)
            if (m.Name() == name.Trim().ToLowerInvariant()) return m;
        throw new ArgumentException($"unknown mode '{name}': expected one of {string.Join(", ", All.Select(x => x.Name()))}.");
    }

    /// <summary>Dense runs on one host whatever H the cell says.</summary>
    public static bool IsSingleHost(this EvalMode m) => m is EvalMode.Dense or EvalMode.DenseCriti or EvalMode.DenseShadowKv;

    /// <summary>The modes whose prefill prunes with CritiPrefill (run when named; not part of the default set).</summary>
    public static bool IsCritiPrefill(this EvalMode m) => m is EvalMode.DenseCriti or EvalMode.ApbCriti;

    /// <summary>The modes that decode from a ShadowKV store per host (run when named; not part of the default set).</summary>
    public static bool IsShadowKv(this EvalMode m) => m is EvalMode.DenseShadowKv or EvalMode.ApbShadowKv;

    /// <summary>The modes that need trained retaining heads.</summary>
    public static bool NeedsRetainingHeads(this EvalMode m) => m is EvalMode.ApbRetaining or EvalMode.ApbCriti or EvalMode.ApbShadowKv;
}
