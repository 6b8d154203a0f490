using ApbCluster.Model.Attention;
using static TorchSharp.torch;

namespace ApbCluster.Model.KvStores;

/// <summary>Every context key, attended by the fused kernel: the exact store the others are measured against.</summary>
/// <param name="keys">Per layer [1, S, Hkv, D] after RoPE.</param>
/// <param name="owns">Whether disposing the store frees the tensors (false when a shard that outlives it holds them).</param>
public sealed class FullKvStore(IReadOnlyList<Tensor> keys, IReadOnlyList<Tensor> values, bool owns = false) : IKvStore
{
    public string Kind => "full";

    public long Length => keys.Count == 0 ? 0 : keys[0].shape[1];

    public long DeviceBytes => keys.Concat(values).Sum(t => t.NumberOfElements * t.ElementSize);

    public long HostBytes => 0;

    public (Tensor Out, Tensor Lse) Attend(int layer, Tensor q, double scale) =>
        FusedAttention.Attend(q, keys[layer], values[layer], causal: false, scale);

    public void Dispose()
    {
        if (!owns) return;
        foreach (var t in keys.Concat(values)) t.Dispose();
    }
}
