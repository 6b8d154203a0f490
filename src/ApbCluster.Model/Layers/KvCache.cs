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
    private readonly bool _owns = true;

    /// <summary>A cache over buffers someone else owns (a <see cref="Forward.KvPool"/> slot: views [1, capacity, Hkv, D]).</summary>
    internal KvCache(Tensor[] keys, Tensor[] values)
    {
        _keys = keys;
        _values = values;
        _lengths = new long[keys.Length];
        _owns = false;
        Batch = keys[0].shape[0];
        Capacity = keys[0].shape[1];
    }

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

    /// <summary>Counts <paramref name="positions"/> more as filled in <paramref name="layer"/>, written by the caller
    /// straight into the buffers (a batched decode step writes every slot of a pool in one kernel).</summary>
    internal void Advance(int layer, long positions)
    {
        if (_lengths[layer] + positions > Capacity)
            throw new InvalidOperationException($"KV cache capacity exceeded: layer {layer} holds {_lengths[layer]} positions of {Capacity}.");
        _lengths[layer] += positions;
    }

    public void Dispose()
    {
        if (!_owns) return;
        foreach (var t in _keys) t.Dispose();
        foreach (var t in _values) t.Dispose();
    }
}
