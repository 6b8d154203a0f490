using ApbCluster.Model.Attention;
using ApbCluster.Model.KvStores;
using ApbCluster.Model.Layers;
using static TorchSharp.torch;

namespace ApbCluster.Model.Forward;

/// <summary>
/// Decodes many sequences on one device together: each step runs the model once for all running sequences
/// ([B, 1] rows, one matmul per weight), and each row attends only its own keys (ragged lengths, one kernel for the
/// batch on CUDA). Sequences come and go between steps. Greedy decoding; the one host sync per step is reading the
/// B new token ids. Not thread-safe: one thread drives a decoder.
/// <para>Where the KV lives: by default a sequence's prompt and decoded tokens share a <see cref="KvPool"/> slot.
/// With a context store (<see cref="IKvStore"/>: ShadowKV) the prompt is prefilled into a temporary cache, handed to
/// the store, and the slot keeps only the decoded tokens; each layer then merges the store's (out, lse) with the
/// slot's exactly, as Phase 2 does.</para>
/// </summary>
public sealed class BatchDecoder : IDisposable
{
    private readonly LlamaModel _model;
    private readonly KvPool _pool;
    private readonly Func<KvCache, IKvStore>? _contextStore;
    private readonly Dictionary<int, long> _nextToken = new(); // slot -> the token its next step feeds
    private readonly Dictionary<int, long> _offset = new();    // slot -> positions held outside the slot (the store's)
    private readonly Dictionary<int, IKvStore> _stores = new();

    /// <param name="capacity">Positions a slot holds: prompt and decoded tokens, or only the decoded tokens with a context store.</param>
    /// <param name="contextStore">Turns a prefilled prompt's cache into the store its decode steps read (null: the slot keeps it).</param>
    public BatchDecoder(LlamaModel model, int slots, long capacity, Func<KvCache, IKvStore>? contextStore = null)
    {
        _model = model;
        _contextStore = contextStore;
        _pool = new KvPool(model.Config, slots, capacity, model.Device, model.Dtype);
    }

    public KvPool Pool => _pool;

    /// <summary>Slots decoding now.</summary>
    public IReadOnlyCollection<int> Running => _nextToken.Keys;

    /// <summary>Bytes the running sequences' context stores keep on the device and in host memory.</summary>
    public (long Device, long Host) StoreBytes => (_stores.Values.Sum(s => s.DeviceBytes), _stores.Values.Sum(s => s.HostBytes));

    /// <summary>
    /// Prefills <paramref name="promptIds"/> (dense, through the model's one forward, or <paramref name="prefill"/>:
    /// ids [1, S] and an empty cache in, the last position's logits [1, 1, vocab] out) and returns the slot and the first
    /// generated token; the sequence then takes part in every <see cref="Step"/> until released.
    /// </summary>
    public (int Slot, long First) Admit(IReadOnlyList<long> promptIds, Func<Tensor, KvCache, Tensor>? prefill = null)
    {
        if (promptIds.Count == 0) throw new ArgumentException("the prompt has no tokens.", nameof(promptIds));
        if (_contextStore is null && promptIds.Count >= _pool.Capacity)
            throw new ArgumentException($"a prompt of {promptIds.Count} tokens leaves no room to decode in slots of {_pool.Capacity} positions.");
        var (slot, cache) = _pool.Acquire();
        try
        {
            using var noGrad = no_grad();
            using var scope = NewDisposeScope();
            lock (_model.Rope) _model.Rope.EnsureCapacity(promptIds.Count + _pool.Capacity);
            var ids = tensor(promptIds.ToArray(), dtype: ScalarType.Int64).reshape(1, -1).to(_model.Device);
            Tensor logits;
            if (_contextStore is null)
                logits = prefill is null ? _model.Forward(ids, cache, lastPositionOnly: true) : prefill(ids, cache);
            else
            {
                using var prompt = _model.CreateCache(1, promptIds.Count);
                logits = prefill is null ? _model.Forward(ids, prompt, lastPositionOnly: true) : prefill(ids, prompt);
                _stores[slot] = _contextStore(prompt);
                _offset[slot] = promptIds.Count;
            }
            long first = logits[0, -1].argmax().item<long>();
            _nextToken[slot] = first;
            return (slot, first);
        }
        catch
        {
            Release(slot);
            throw;
        }
    }

    /// <summary>Positions the sequence holds (prompt and decoded tokens fed so far).</summary>
    public long Length(int slot) => _offset.GetValueOrDefault(slot) + _pool.CacheOf(slot).Length;

    /// <summary>Frees the slot and its context store (its sequence ended or was cancelled).</summary>
    public void Release(int slot)
    {
        _nextToken.Remove(slot);
        _offset.Remove(slot);
        if (_stores.Remove(slot, out var store)) store.Dispose();
        _pool.Release(slot);
    }

    /// <summary>
    /// One decode step of every running sequence: feeds each its last token and returns the next one, by slot.
    /// A sequence whose slot is full must be released before the step (it throws otherwise, naming the slot).
    /// An enabled <paramref name="timer"/> charges the step's work to qkv, attention, mlp and logits (synchronising
    /// around each: a profile, slower than a plain step).
    /// </summary>
    public IReadOnlyDictionary<int, long> Step(PhaseTimer? timer = null)
    {
        timer ??= PhaseTimer.Disabled;
        if (_nextToken.Count == 0) return new Dictionary<int, long>();
        var slots = _nextToken.Keys.Order().ToArray();
        foreach (var s in slots)
            if (_pool.CacheOf(s).Length >= _pool.Capacity) throw new InvalidOperationException($"slot {s} is full ({_pool.Capacity} positions): release it before the next step.");
        int b = slots.Length;
        var filled = slots.Select(s => _pool.CacheOf(s).Length).ToArray();
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        // One upload for the step: [token ids | positions | flat pool rows], then everything stays on the device.
        var packed = new long[3 * b];
        for (int i = 0; i < b; i++)
        {
            packed[i] = _nextToken[slots[i]];
            packed[b + i] = _offset.GetValueOrDefault(slots[i]) + filled[i];
            packed[2 * b + i] = slots[i] * _pool.Capacity + filled[i];
        }
        var step = tensor(packed, dtype: ScalarType.Int64).to(_model.Device);
        var ids = step.narrow(0, 0, b).view(b, 1);
        var angles = _model.Rope.Angles(step.narrow(0, b, b).view(b, 1), _model.Dtype);
        using var rows = new RaggedRows(slots, filled.Select(p => p + 1).ToArray(), _pool.Capacity, _model.Device);
        var stores = _stores.Count == 0 ? null : slots.Select(s => _stores[s]).ToArray();
        var attention = new PoolAttention(_pool, slots, step.narrow(0, 2 * b, b), rows, stores, _model.Scale, timer);
        var hidden = _model.RunLayers(_model.Embed(ids), angles, attention, timer);
        long[] next;
        using (timer.Measure("logits")) next = _model.Logits(hidden).view(b, -1).argmax(-1).cpu().data<long>().ToArray();
        var result = new Dictionary<int, long>(b);
        for (int i = 0; i < b; i++) _nextToken[slots[i]] = result[slots[i]] = next[i];
        return result;
    }

    /// <summary>Each row's key and value into its slot, the ragged attention over the slots, and, with context stores,
    /// each row's store part merged in exactly.</summary>
    private sealed class PoolAttention(KvPool pool, int[] slots, Tensor flatRows, RaggedRows rows, IKvStore[]? stores, double scale, PhaseTimer timer)
        : IAttentionBackend
    {
        public Tensor Attend(int layer, Tensor hidden, QkvProjection p)
        {
            using var _ = timer.Measure(PhaseTimer.Attention);
            pool.AppendStep(layer, slots, flatRows, p.K, p.V);
            var own = FusedAttention.AttendRagged(p.Q, pool.Keys(layer), pool.Values(layer), rows, scale);
            if (stores is null) return own.Out;
            var parts = stores.Select((s, i) => s.Attend(layer, p.Q.narrow(0, i, 1), scale)).ToArray();
            var context = (cat(parts.Select(x => x.Out).ToArray(), 0), cat(parts.Select(x => x.Lse).ToArray(), 0));
            return LseMerge.Merge(context, own).Out.to(p.Q.dtype);
        }
    }

    public void Dispose()
    {
        foreach (var store in _stores.Values) store.Dispose();
        _stores.Clear();
        _pool.Dispose();
    }
}
