using ApbCluster.Contracts;
using ApbCluster.Model.KvStores;

namespace ApbCluster.Engine;

/// <summary>ShadowKV's parameters as a resolved <see cref="KvStoreOptions"/> on the wire (every field set) and back.</summary>
public static class ShadowKvWire
{
    public static KvStoreOptions ToWire(ShadowKvOptions o) =>
        new(KvStoreKind.ShadowKv, o.Rank, o.Chunk, o.Budget, o.Outliers, o.Local, o.Values == ShadowKvValues.Host);

    /// <summary>The store a host builds: null for the full one. The router resolved every field; a host checks them again
    /// (a message from elsewhere must not crash it).</summary>
    public static ShadowKvOptions? FromWire(KvStoreOptions? k) =>
        k is { Kind: KvStoreKind.ShadowKv, Rank: { } rank, Chunk: { } chunk, Budget: { } budget, Outliers: { } outliers, Local: { } local }
            ? new ShadowKvOptions
            {
                Rank = rank, Chunk = chunk, Budget = budget, Outliers = outliers, Local = local,
                Values = k.ValuesOnHost == true ? ShadowKvValues.Host : ShadowKvValues.Device,
            }.Validate("shadow-")
            : null;
}
