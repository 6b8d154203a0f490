using ApbCluster.Model.KvStores;
using ApbCluster.Model.Layers;
using ApbCluster.Parallel.Strategies;

namespace ApbCluster.Parallel.Phase2;

/// <summary>The <see cref="Phase2Options.KvStore"/> a run asks for: null keeps every key (the full store).</summary>
public static class KvStoreFactory
{
    /// <summary>ShadowKV per host, built from the host's shard after prefill; the shard's K/V are freed layer by layer
    /// as they are converted (the host's shard then keeps its positions and timings only).</summary>
    public static Func<HostShard, LlamaModel, IKvStore>? For(ShadowKvOptions? shadowKv) => shadowKv is null ? null
        : (shard, model) => ShadowKvStore.Build(shard.Keys, shard.Values, shard.Positions, model, shadowKv, disposeInputs: true);
}
