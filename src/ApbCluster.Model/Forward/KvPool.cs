using ApbCluster.Model.Config;
using ApbCluster.Model.Layers;
using static TorchSharp.torch;

namespace ApbCluster.Model.Forward;

/// <summary>
/// Preallocated KV for many sequences on one device: per layer one buffer [slots, capacity, Hkv, D]. A sequence
/// owns a slot while it runs; its prefill writes through the slot's <see cref="KvCache"/> (views, no copy), and a
/// batched decode step writes the new key and value of every running slot with one indexed copy per buffer.
/// The memory is allocated once: admitting a sequence never allocates, it only finds a free slot.
/// </summary>
public sealed class KvPool : IDisposable
{
    private readonly Tensor[] _keys, _values;
    private readonly KvCache?[] _slots;
    private readonly Tensor[]?[] _views; // each taken slot's views of the buffers, freed on release

    public KvPool(ModelConfig config, int slots, long capacity, Device device, ScalarType dtype)
    {
        if (slots < 1) throw new ArgumentOutOfRangeException(nameof(slots), "a KV pool needs at least one slot.");
        if (capacity < 1) throw new ArgumentOutOfRangeException(nameof(capacity), "a KV pool's capacity must be positive.");
        Capacity = capacity;
        _slots = new KvCache?[slots];
        _views = new Tensor[]?[slots];
        _keys = new Tensor[config.NumLayers];
        _values = new Tensor[config.NumLayers];
        var shape = new[] { slots, capacity, config.NumKvHeads, (long)config.HeadDim };
        for (int i = 0; i < config.NumLayers; i++)
        {
            _keys[i] = empty(shape, dtype: dtype, device: device);
            _values[i] = empty(shape, dtype: dtype, device: device);
            _keys[i].DetachFromDisposeScope();
            _values[i].DetachFromDisposeScope();
        }
    }

    /// <summary>Bytes one slot takes (keys and values of every layer).</summary>
    public static long SlotBytes(ModelConfig c, long capacity, ScalarType dtype) =>
        capacity * c.NumLayers * 2L * c.NumKvHeads * c.HeadDim * (dtype is ScalarType.Float32 ? 4 : dtype is ScalarType.Float64 ? 8 : 2);

    public int Slots => _slots.Length;

    public long Capacity { get; }

    public int Free => _slots.Count(s => s is null);

    /// <summary>Takes a free slot: its cache starts empty. Throws when every slot is taken.</summary>
    public (int Slot, KvCache Cache) Acquire()
    {
        int slot = Array.IndexOf(_slots, null);
        if (slot < 0) throw new InvalidOperationException($"all {Slots} KV pool slots are in use.");
        var keys = _keys.Select(t => t.narrow(0, slot, 1)).ToArray();
        var values = _values.Select(t => t.narrow(0, slot, 1)).ToArray();
        _views[slot] = keys.Concat(values).ToArray();
        foreach (var view in _views[slot]!) view.DetachFromDisposeScope(); // they live as long as the slot is taken
        var cache = new KvCache(keys, values);
        _slots[slot] = cache;
        return (slot, cache);
    }

    public void Release(int slot)
    {
        foreach (var view in _views[slot] ?? []) view.Dispose();
        _views[slot] = null;
        _slots[slot] = null;
    }

    public KvCache CacheOf(int slot) => _slots[slot] ?? throw new InvalidOperationException($"KV pool slot {slot} is free.");

    /// <summary>Keys of every slot, [slots, capacity, Hkv, D] (unfilled rows hold garbage).</summary>
    public Tensor Keys(int layer) => _keys[layer];

    public Tensor Values(int layer) => _values[layer];

    /// <summary>
    /// Writes one new key and value per running sequence: k, v [B, 1, Hkv, D] go to row <c>lengths[b]</c> of slot
    /// <c>slots[b]</c>, given as <paramref name="flatRows"/> = slot x capacity + length (int64 [B] on the device), and the
    /// slots' caches count them. One indexed copy per buffer, whatever B.
    /// </summary>
    public void AppendStep(int layer, IReadOnlyList<int> slots, Tensor flatRows, Tensor k, Tensor v)
    {
        long b = k.shape[0], hkv = k.shape[2], d = k.shape[3];
        _keys[layer].view(-1, hkv, d).index_copy_(0, flatRows, k.reshape(b, hkv, d));
        _values[layer].view(-1, hkv, d).index_copy_(0, flatRows, v.reshape(b, hkv, d));
        foreach (var slot in slots) CacheOf(slot).Advance(layer, 1);
    }

    public void Dispose()
    {
        for (int slot = 0; slot < Slots; slot++) Release(slot);
        foreach (var t in _keys.Concat(_values)) t.Dispose();
    }
}
