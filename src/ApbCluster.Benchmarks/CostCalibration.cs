using ApbCluster.Model;
using ApbCluster.Model.Attention;
using ApbCluster.Model.Layers;
using ApbCluster.Parallel.Plan;
using static TorchSharp.torch;

namespace ApbCluster.Benchmarks;

/// <summary>
/// Measures the two rates of <see cref="CostModel"/> on the model's device, on one layer: a token's projections
/// and MLP (<see cref="DecoderLayer.Project"/> + <see cref="DecoderLayer.Finish"/>), and attention in the two
/// shapes an APB host runs (a causal square, and local rows over an unmasked block of half their length).
/// The balanced split needs their ratio; each rate is the FLOPs of its part over its measured time.
/// </summary>
public static class CostCalibration
{
    public sealed record Result(ComputeRates Rates, int Tokens, double TokenMs, double CausalMs, double UnmaskedMs);

    public static Result Measure(LlamaModel model, int tokens, int repeats = 3)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var c = model.Config;
        var layer = model.Layers[0];
        lock (model.Rope) model.Rope.EnsureCapacity(tokens + 1);
        var hidden = randn(1, tokens, c.HiddenSize, dtype: model.Dtype, device: model.Device);
        var angles = model.Rope.Angles(TorchConstants.Positions(0, tokens, model.Device), model.Dtype);
        var p = layer.Project(hidden, angles);
        var half = (K: p.K.narrow(1, 0, tokens / 2), V: p.V.narrow(1, 0, tokens / 2));

        double Best(Action body)
        {
            body(); // warm-up: kernels chosen, cuDNN graphs built, allocator grown
            return Enumerable.Range(0, repeats).Min(_ => GpuClock.Seconds(model.Device, () =>
            {
                using var inner = NewDisposeScope();
                body();
            }));
        }
        double tokenS = Best(() => layer.Finish(hidden, layer.Project(hidden, angles).Q));
        double causalS = Best(() => FusedAttention.Attend(p.Q, p.K, p.V, causal: true, model.Scale));
        double unmaskedS = Best(() => FusedAttention.Attend(p.Q, half.K, half.V, causal: false, model.Scale));

        var unit = CostModel.For(c, new ComputeRates(1, 1)); // FLOPs per pair and per token
        double pairs = (double)tokens * tokens / 2 + (double)tokens * (tokens / 2);
        var rates = new ComputeRates(unit.PairCost * pairs / (causalS + unmaskedS), unit.TokenCost * tokens / tokenS);
        return new Result(rates, tokens, 1000 * tokenS, 1000 * causalS, 1000 * unmaskedS);
    }
}
