using ApbCluster.Model.Config;
using static TorchSharp.torch;

namespace ApbCluster.Model.Layers;

/// <summary>
/// Preallocated keys and values, per layer [B, capacity, Hkv, D]. Append writes in place (no cat, no
/// reallocation); Keys/Values are views of the filled part. Lengths are tracked on the host, so no
/// device sync is needed. Each layer has its own fill level; Length is what every layer holds.
/// </summary>
public sealed class KvCache : IDisposable
{
    private readonly Tensor[] _keys, _values;
    private readonly long[] _lengths;

    public KvCache(ModelConfig config, long batch, long capacity, Device device, ScalarType dtype)
    {
        if (capacity <= 0) throw new ArgumentOutOfRangeException(nameof(capacity), "KV cache capacity must be positive.");
        Capacity = capacity;
        Batch = batch;
        _keys = new Tensor[config.NumLayers];
        _values = new Tensor[config.NumLayers];
        _lengths = new long[config.NumLayers];
        var shape = new[] { batch, capacity, config.NumKvHeads, (long)config.HeadDim };
        for (int i = 0; i < config.NumLayers; i++)
        {
            _keys[i] = empty(shape, dtype: dtype, device: device);
            _values[i] = empty(shape, dtype: dtype, device: device);
            _keys[i].DetachFromDisposeScope();
            _values[i].DetachFromDisposeScope();
        }
    }

    public long Capacity { get; }
    public long Batch { get; }
    public int NumLayers => _keys.Length;

    /// <summary>Positions held by every layer.</summary>
    public long Length => _lengths.Min();

    public long LengthOf(int layer) => _lengths[layer];

    /// <summary>Bytes held by the preallocated buffers.</summary>
    public long Bytes => _keys.Sum(t => t.NumberOfElements * t.ElementSize) * 2;

    /// <summary>Writes k, v [B, S, Hkv, D] after the layer's filled part.</summary>
    public void Append(int layer, Tensor k, Tensor v)
    {
        long s = k.shape[1], at = _lengths[layer];
        if (at + s > Capacity)
            throw new InvalidOperationException(
                $"KV cache capacity exceeded: layer {layer} holds {at} positions and appending {s} would exceed the capacity of {Capacity}.");
        _keys[layer].narrow(1, at, s).copy_(k);
        _values[layer].narrow(1, at, s).copy_(v);
        _lengths[layer] = at + s;
    }

    /// <summary>View of the layer's filled keys [B, length, Hkv, D] (valid until the next Truncate/Reset overwrite).</summary>
    public Tensor Keys(int layer) => _keys[layer].narrow(1, 0, _lengths[layer]);

    public Tensor Values(int layer) => _values[layer].narrow(1, 0, _lengths[layer]);

    /// <summary>Forgets positions from <paramref name="length"/> on, in every layer.</summary>
    public void Truncate(long length)
    {
        if (length < 0) throw new ArgumentOutOfRangeException(nameof(length));
        for (int i = 0; i < _lengths.Length; i++) _lengths[i] = Math.Min(_lengths[i], length);
    }

    public void Reset() => Truncate(0);

    public void Dispose()
    {
        foreach (var t in _keys) t.Dispose();
        foreach (var t in _values) t.Dispose();
    }
}
