using ApbCluster.Model.Config;

namespace ApbCluster.Parallel.Plan;

/// <summary>
/// A host's prefill time per layer: <see cref="PairCost"/> seconds per (query, key) pair of attention and
/// <see cref="TokenCost"/> seconds per token through the projections, the compressor and the MLP.
/// Host h's cost: pairs(local^2/2 + local*(anchor + passing_h) + anchor^2/2) + tokens*(anchor + local).
/// Only the ratio matters to the balanced split; absolute seconds make the model checkable against a run.
/// </summary>
public sealed record CostModel(double PairCost, double TokenCost)
{
    /// <summary>A layer's FLOPs at the measured throughput of the kernels that do them: QK^T and PV per pair on the
    /// attention kernel, the qkv/o/MLP matmuls per token on GEMMs. FLOPs alone mislead: the two kinds of kernel
    /// reach different fractions of the chip's peak.</summary>
    public static CostModel For(ModelConfig c, ComputeRates? rates = null)
    {
        rates ??= ComputeRates.H200Bf16;
        double pairFlops = 4.0 * c.NumHeads * c.HeadDim;
        double tokenFlops = 2.0 * c.HiddenSize * ((c.NumHeads * 2 + c.NumKvHeads * 2) * (double)c.HeadDim + 3.0 * c.IntermediateSize);
        return new CostModel(pairFlops / rates.AttentionFlopsPerSecond, tokenFlops / rates.TokenFlopsPerSecond);
    }

    /// <summary>Llama-3.1-8B on an H200 at the measured rates.</summary>
    public static CostModel Default { get; } = For(ModelShapes.Get("llama-3.1-8b"));

    public double HostCost(double local, double anchor, double passing) =>
        PairCost * (local * local / 2 + local * (anchor + passing) + anchor * anchor / 2) + TokenCost * (anchor + local);

    /// <summary>The longest local block whose cost stays within <paramref name="budget"/> (solves the quadratic).</summary>
    internal double MaxLocal(double budget, double anchor, double passing)
    {
        double a = PairCost / 2, b = PairCost * (anchor + passing) + TokenCost;
        double c = PairCost * anchor * anchor / 2 + TokenCost * anchor - budget;
        if (c > 0) return 0;
        return (-b + Math.Sqrt(b * b - 4 * a * c)) / (2 * a);
    }
}

/// <summary>
/// Measured throughput of a device, in FLOP/s: attention (fused causal and unmasked calls, per the FLOPs of QK^T
/// and PV) and everything a token pays outside attention (qkv, o and MLP matmuls with their norms and activations,
/// per the matmuls' FLOPs). `apb bench --calibrate` measures both on the device it runs on.
/// </summary>
public sealed record ComputeRates(double AttentionFlopsPerSecond, double TokenFlopsPerSecond)
{
    /// <summary>One H200, bf16, a Llama-3.1-8B layer at 16K tokens (`apb bench --calibrate`, docs/benchmarks/truth-h200).</summary>
    public static ComputeRates H200Bf16 { get; } = new(631e12, 573e12);
}
