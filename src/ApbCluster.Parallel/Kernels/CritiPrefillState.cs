using ApbCluster.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace ApbCluster.Parallel.Kernels;

/// <summary>
/// What CritiPrefill carries from one layer to the next within one prefill (one host): the previous layer's
/// block scores, for layer fusion. Create one per prefill, hand it every layer in order, dispose it at the end.
/// </summary>
public sealed class CritiPrefillState(CritiPrefillOptions options) : IDisposable
{
    private Tensor? _previous;

    public CritiPrefillOptions Options { get; } = options;

    /// <summary>
    /// The scores layer <paramref name="layer"/> selects with: its own <paramref name="scores"/> for the first
    /// <see cref="CritiPrefillOptions.UnfusedLayers"/> layers (as the reference), else previous x FusionPrevious +
    /// scores x FusionCurrent. The result is also kept as the next layer's previous. [M, Hkv, blocks] fp32.
    /// </summary>
    public Tensor Fuse(int layer, Tensor scores)
    {
        var fused = scores;
        if (layer >= Options.UnfusedLayers && _previous is not null && _previous.shape.SequenceEqual(scores.shape))
        {
            using var wp = Options.FusionPrevious.ToScalar();
            using var wc = Options.FusionCurrent.ToScalar();
            fused = _previous.mul(wp).add(scores.mul(wc), TorchConstants.One);
        }
        var kept = fused.detach().clone();
        kept.DetachFromDisposeScope(); // lives across the layers' dispose scopes, until the next layer or Dispose
        _previous?.Dispose();
        _previous = kept;
        return fused;
    }

    public void Dispose()
    {
        _previous?.Dispose();
        _previous = null;
    }
}
