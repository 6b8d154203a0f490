using ApbCluster.Model.Attention;
using ApbCluster.Model.Layers;
using static TorchSharp.torch;

namespace ApbCluster.Model.Forward;

/// <summary>Dense causal attention, appending the rows' keys and values to a KV cache first when there is one
/// (prefill and decode of one device), so the rows attend everything cached before them and themselves.</summary>
public sealed class CachedAttention(KvCache? cache, double scale) : IAttentionBackend
{
    public Tensor Attend(int layer, Tensor hidden, QkvProjection p)
    {
        if (cache is null) return FusedAttention.Attend(p.Q, p.K, p.V, causal: true, scale).Out;
        cache.Append(layer, p.K, p.V);
        return FusedAttention.Attend(p.Q, cache.Keys(layer), cache.Values(layer), causal: true, scale).Out;
    }
}
