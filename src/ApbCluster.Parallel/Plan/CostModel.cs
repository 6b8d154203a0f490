using ApbCluster.Model.Config;

namespace ApbCluster.Parallel.Plan;

/// <summary>
/// A host's prefill cost per layer, in arbitrary units: <see cref="PairCost"/> per (query, key) pair
/// of attention and <see cref="TokenCost"/> per token through the projections and the MLP.
/// Host h's cost: pairs(local^2/2 + local*(anchor + passing_h) + anchor^2/2) + tokens*(anchor + local).
/// </summary>
public sealed record CostModel(double PairCost, double TokenCost)
{
    /// <summary>Flop ratio of a Llama-style layer: QK^T and PV per pair against qkv/o/MLP matmuls per token.</summary>
    public static CostModel FromConfig(ModelConfig c)
    {
        double pair = 4.0 * c.NumHeads * c.HeadDim;
        double token = 2.0 * c.HiddenSize * ((c.NumHeads * 2 + c.NumKvHeads * 2) * (double)c.HeadDim + 3.0 * c.IntermediateSize);
        return new CostModel(pair, token);
    }

    /// <summary>Llama-3.1-8B's ratio (about 26K keys of attention cost one token of MLP).</summary>
    public static CostModel Default { get; } = new(4.0 * 32 * 128, 2.0 * 4096 * ((64 + 16) * 128.0 + 3.0 * 14336));

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
