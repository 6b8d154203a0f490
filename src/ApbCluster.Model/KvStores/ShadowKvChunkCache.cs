using static TorchSharp.torch;

namespace ApbCluster.Model.KvStores;

/// <summary>
/// One layer's V chunks of the previous decode step, on the device, for values kept in host memory: adjacent steps
/// select mostly the same chunks (the reference's observation), so only the chunks not selected last step are copied
/// over. Counts the chunks served from here (<see cref="Hits"/>) and those copied (<see cref="Fetched"/>).
/// Not thread-safe: a store serves one decode sequence.
/// </summary>
internal sealed class ShadowKvChunkCache : IDisposable
{
    private Tensor? _chunks; // [H, k] chunk ids chosen last step (device)
    private Tensor? _values; // [H, k, chunk, D] their values (device)

    public long Hits { get; private set; }

    public long Fetched { get; private set; }

    public long DeviceBytes => (_chunks is null ? 0 : ShadowKvLayer.Bytes(_chunks)) + (_values is null ? 0 : ShadowKvLayer.Bytes(_values));

    /// <summary>The values of <paramref name="chunks"/> [H, k] (ids into each head's chunks) from
    /// <paramref name="hostValues"/> [H, n, chunk, D]; <paramref name="headOffsets"/> [H, 1] = h x n. Returns
    /// [H, k x chunk, D] on <paramref name="device"/>.</summary>
    public Tensor Values(Tensor hostValues, Tensor chunks, Tensor headOffsets, Device device)
    {
        long h = chunks.shape[0], k = chunks.shape[1], n = hostValues.shape[1], c = hostValues.shape[2], d = hostValues.shape[3];
        var rows = hostValues.view(h * n, c, d);
        var global = chunks.add(headOffsets, TorchConstants.One).flatten(); // [H*k] rows of `rows`
        Tensor values;
        if (_chunks is null || _values is null)
        {
            values = rows.index_select(0, global.cpu()).to(device).view(h, k, c, d);
            Fetched += h * k;
        }
        else
        {
            var match = chunks.unsqueeze(2).eq(_chunks.unsqueeze(1));                  // [H, k, k_prev]
            var from = match.to(ScalarType.Float32).argmax(2);                           // where a hit sits last step
            values = _values.gather(1, from.view(h, k, 1, 1).expand(h, k, c, d));        // misses hold junk until copied
            var missing = match.any(2).logical_not().flatten().nonzero().flatten();      // [m]
            long m = missing.shape[0];
            if (m > 0)
            {
                var fetched = rows.index_select(0, global.index_select(0, missing).cpu()).to(device);
                values = values.view(h * k, c, d).index_copy(0, missing, fetched).view(h, k, c, d);
            }
            Hits += h * k - m;
            Fetched += m;
        }
        // Kept for the next step: out of the step's dispose scope, freed when replaced.
        _chunks?.Dispose();
        _values?.Dispose();
        _chunks = chunks.clone().DetachFromDisposeScope();
        _values = values.DetachFromDisposeScope();
        return _values.view(h, k * c, d);
    }

    public void Dispose()
    {
        _chunks?.Dispose();
        _values?.Dispose();
    }
}
