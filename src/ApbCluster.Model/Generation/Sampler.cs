using TorchSharp;
using static TorchSharp.torch;

namespace ApbCluster.Model.Generation;

/// <summary>
/// Picks the next token on the device (no host sync here: the caller reads the one id it needs).
/// Greedy: argmax. Otherwise softmax(logits / T), top-p filtered as HF's TopPLogitsWarper (a token is
/// dropped when the more probable tokens already reach top_p; the most probable always stays), then
/// a draw from a seeded generator, so equal seeds give equal samples. The generator lives on the CPU
/// (TorchSharp 0.107 has no CUDA generators): it draws one uniform number per row, and the pick is an
/// inverse-CDF search on the logits' device, so only that number crosses over.
/// </summary>
public sealed class Sampler : IDisposable
{
    private readonly GenerationOptions _options;
    private readonly TorchSharp.torch.Generator? _generator;

    // Kept as fields rather than converted per call: a temporary Scalar can be freed by the GC while the native op
    // still reads it (see FusedAttention).
    private readonly Scalar _temperature, _topP, _zero = 0.0.ToScalar();

    public Sampler(GenerationOptions options, Device device)
    {
        if (options.TopP <= 0 || options.TopP > 1) throw new ArgumentOutOfRangeException(nameof(options), $"top_p must be in (0, 1], got {options.TopP}.");
        _options = options;
        _temperature = options.Temperature.ToScalar();
        _topP = options.TopP.ToScalar();
        if (!options.Greedy) _generator = new TorchSharp.torch.Generator((ulong)options.Seed, CPU);
    }

    /// <summary>logits [B, vocab] (fp32) -> token ids [B] int64, on the logits' device.</summary>
    public Tensor Sample(Tensor logits)
    {
        if (_generator is null) return logits.argmax(-1);
        var probs = logits.to(ScalarType.Float32).div(_temperature).softmax(-1);
        if (_options.TopP >= 1.0) return Draw(probs).squeeze(-1);
        var (sorted, order) = probs.sort(-1, descending: true);
        var before = sorted.cumsum(-1) - sorted; // probability of the more probable tokens
        var kept = sorted.masked_fill(before.ge(_topP), _zero);
        return order.gather(-1, Draw(kept)).squeeze(-1);
    }

    /// <summary>One index per row with probability proportional to <paramref name="weights"/> [B, V] (unnormalised).</summary>
    private Tensor Draw(Tensor weights)
    {
        var cdf = weights.cumsum(-1);
        var u = rand(new long[] { weights.shape[0], 1 }, dtype: ScalarType.Float32, generator: _generator).to(weights.device);
        var target = u * cdf.narrow(-1, weights.shape[1] - 1, 1);
        using var last = (weights.shape[1] - 1).ToScalar();
        return searchsorted(cdf, target, right: true).clamp_max(last);
    }

    public void Dispose()
    {
        _generator?.Dispose();
        _temperature.Dispose();
        _topP.Dispose();
        _zero.Dispose();
    }
}
