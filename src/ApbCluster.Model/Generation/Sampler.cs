using static TorchSharp.torch;

namespace ApbCluster.Model.Generation;

/// <summary>
/// Picks the next token on the device (no host sync here: the caller reads the one id it needs).
/// Greedy: argmax. Otherwise softmax(logits / T), top-p filtered as HF's TopPLogitsWarper (a token is
/// dropped when the more probable tokens already reach top_p; the most probable always stays), then
/// a draw from a seeded generator, so equal seeds give equal samples.
/// </summary>
public sealed class Sampler : IDisposable
{
    private readonly GenerationOptions _options;
    private readonly TorchSharp.torch.Generator? _generator;

    public Sampler(GenerationOptions options, Device device)
    {
        if (options.TopP <= 0 || options.TopP > 1) throw new ArgumentOutOfRangeException(nameof(options), $"top_p must be in (0, 1], got {options.TopP}.");
        _options = options;
        if (!options.Greedy) _generator = new TorchSharp.torch.Generator((ulong)options.Seed, device);
    }

    /// <summary>logits [B, vocab] (fp32) -> token ids [B] int64, on the logits' device.</summary>
    public Tensor Sample(Tensor logits)
    {
        if (_generator is null) return logits.argmax(-1);
        var probs = (logits.to(ScalarType.Float32) / _options.Temperature).softmax(-1);
        if (_options.TopP >= 1.0) return multinomial(probs, 1, generator: _generator).squeeze(-1);
        var (sorted, order) = probs.sort(-1, descending: true);
        var before = sorted.cumsum(-1) - sorted; // probability of the more probable tokens
        var kept = sorted.masked_fill(before >= _options.TopP, 0.0);
        var pick = multinomial(kept, 1, generator: _generator); // multinomial renormalises
        return order.gather(-1, pick).squeeze(-1);
    }

    public void Dispose() => _generator?.Dispose();
}
