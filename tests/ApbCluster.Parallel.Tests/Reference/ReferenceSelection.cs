using ApbCluster.Parallel.Compression;
using Xunit;
using static TorchSharp.torch;

namespace ApbCluster.Parallel.Tests.Reference;

/// <summary>
/// The passing selection from its definition: scores max-pooled over a centred window of 5 (clipped at the
/// block's edges), positions below l_a excluded, the l_p best tokens per KV head.
/// Max-pooling makes exact ties common (one peak fills up to 5 neighbours); when tied tokens straddle the
/// l_p boundary every choice among them is correct, and the engine's own choice is checked to be one of
/// them and then followed. Wherever the top l_p are unique, the engine must have chosen exactly them.
/// </summary>
internal static class ReferenceSelection
{
    public const int Window = 5;
    private const double TieEps = 1e-4;

    /// <summary>Selected local row indices per KV head, [n_kv][l_p], ascending.</summary>
    /// <param name="scores">Reference scores [S, n_kv] float64.</param>
    /// <param name="engineScores">The engine's recorded scores [1, S, n_kv] for the same host and layer.</param>
    public static long[][] Select(Tensor scores, long[] positions, int anchorLength, int count, Tensor engineScores, string where,
        SelectionStats stats)
    {
        long s = scores.shape[0], hkv = scores.shape[1];
        var engine = EngineChoice(engineScores, positions, anchorLength, count);
        var result = new long[hkv][];
        for (int g = 0; g < hkv; g++)
        {
            var raw = scores.select(1, g).data<double>().ToArray();
            var pooled = new double[s];
            for (int t = 0; t < s; t++)
            {
                pooled[t] = double.NegativeInfinity;
                for (long u = Math.Max(0, t - Window / 2); u <= Math.Min(s - 1, t + Window / 2); u++) pooled[t] = Math.Max(pooled[t], raw[u]);
                if (positions[t] < anchorLength) pooled[t] = double.NegativeInfinity;
            }
            var ranked = Enumerable.Range(0, (int)s).OrderByDescending(t => pooled[t]).ToArray();
            double threshold = pooled[ranked[count - 1]];
            Assert.True(!double.IsNegativeInfinity(threshold), $"{where}: fewer than l_p = {count} selectable tokens");
            var mine = engine[g];
            Assert.Equal(count, mine.Distinct().Count());
            bool unique = count == s || pooled[ranked[count]] < threshold - TieEps;
            if (unique)
            {
                Assert.Equal(ranked.Take(count).Select(t => (long)t).Order(), mine.Order());
                stats.Unique++;
            }
            else
            {
                // A valid top-l_p set: nothing below the boundary value, and everything clearly above it.
                Assert.All(mine, t => Assert.True(pooled[t] >= threshold - TieEps,
                    $"{where} head {g}: engine picked row {t} (pooled {pooled[t]}) below the l_p-th best {threshold}"));
                Assert.All(Enumerable.Range(0, (int)s).Where(t => pooled[t] > threshold + TieEps), t => Assert.Contains((long)t, mine));
                stats.Tied++;
            }
            result[g] = mine.Order().ToArray();
        }
        return result;
    }

    /// <summary>The engine's selection on its own recorded scores (the same call the engine makes).</summary>
    private static long[][] EngineChoice(Tensor engineScores, long[] positions, int anchorLength, int count)
    {
        long s = engineScores.shape[1], hkv = engineScores.shape[2];
        var dummy = zeros(1, s, hkv, 1);
        var idx = TokenSelector.Select(engineScores, tensor(positions), anchorLength, count, dummy, dummy).Indices[0]; // [l_p, n_kv]
        return Enumerable.Range(0, (int)hkv).Select(g => idx.select(1, g).data<long>().ToArray()).ToArray();
    }
}

/// <summary>How many selections were unique (checked exactly) and how many had a tie at the boundary.</summary>
internal sealed class SelectionStats
{
    public int Unique { get; set; }
    public int Tied { get; set; }
    public override string ToString() => $"{Unique} unique, {Tied} tied selections";
}
