using ApbCluster.Model.Attention;
using ApbCluster.Model.Layers;
using static TorchSharp.torch;

namespace ApbCluster.Model.Forward;

/// <summary>
/// Decodes many sequences on one device together: each step runs the model once for all running sequences
/// ([B, 1] rows, one matmul per weight), and each row attends only its own keys (ragged lengths, one kernel for the
/// batch on CUDA). Sequences come and go between steps; their KV lives in a <see cref="KvPool"/> slot from prefill to
/// release. Greedy decoding. The one host sync per step is reading the B new token ids.
/// Not thread-safe: one thread drives a decoder.
/// </summary>
public sealed class BatchDecoder : IDisposable
{
    private readonly LlamaModel _model;
    private readonly KvPool _pool;
    private readonly Dictionary<int, long> _nextToken = new(); // slot -> the token its next step feeds

    public BatchDecoder(LlamaModel model, int slots, long capacity)
    {
        _model = model;
        _pool = new KvPool(model.Config, slots, capacity, model.Device, model.Dtype);
    }

    public KvPool Pool => _pool;

    /// <summary>Slots decoding now.</summary>
    public IReadOnlyCollection<int> Running => _nextToken.Keys;

    /// <summary>
    /// Prefills <paramref name="promptIds"/> into a free slot (dense, through the model's one forward) and returns the
    /// slot and the first generated token; the sequence then takes part in every <see cref="Step"/> until released.
    /// <paramref name="prefill"/> replaces the dense prefill (CritiPrefill): ids [1, S] and the slot's empty cache in,
    /// the last position's logits [1, 1, vocab] out.
    /// </summary>
    public (int Slot, long First) Admit(IReadOnlyList<long> promptIds, Func<Tensor, KvCache, Tensor>? prefill = null)
    {
        if (promptIds.Count == 0) throw new ArgumentException("the prompt has no tokens.", nameof(promptIds));
        if (promptIds.Count >= _pool.Capacity)
            throw new ArgumentException($"a prompt of {promptIds.Count} tokens leaves no room to decode in slots of {_pool.Capacity} positions.");
        var (slot, cache) = _pool.Acquire();
        try
        {
            using var noGrad = no_grad();
            using var scope = NewDisposeScope();
            lock (_model.Rope) _model.Rope.EnsureCapacity(_pool.Capacity);
            var ids = tensor(promptIds.ToArray(), dtype: ScalarType.Int64).reshape(1, -1).to(_model.Device);
            var logits = prefill is null ? _model.Forward(ids, cache, lastPositionOnly: true) : prefill(ids, cache);
            long first = logits[0, -1].argmax().item<long>();
            _nextToken[slot] = first;
            return (slot, first);
        }
        catch
        {
            _pool.Release(slot);
            throw;
        }
    }

    /// <summary>Positions the slot holds (prompt and decoded tokens fed so far).</summary>
    public long Length(int slot) => _pool.CacheOf(slot).Length;

    /// <summary>Frees the slot (its sequence ended or was cancelled).</summary>
    public void Release(int slot)
    {
        _nextToken.Remove(slot);
        _pool.Release(slot);
    }

    /// <summary>
    /// One decode step of every running sequence: feeds each its last token and returns the next one, by slot.
    /// A sequence whose slot is full must be released before the step (it throws otherwise, naming the slot).
    /// </summary>
    public IReadOnlyDictionary<int, long> Step()
    {
        if (_nextToken.Count == 0) return new Dictionary<int, long>();
        var slots = _nextToken.Keys.Order().ToArray();
        foreach (var s in slots)
            if (Length(s) >= _pool.Capacity) throw new InvalidOperationException($"slot {s} is full ({_pool.Capacity} positions): release it before the next step.");
        int b = slots.Length;
        var positions = slots.Select(Length).ToArray();
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        // One upload for the step: [token ids | positions | flat pool rows], then everything stays on the device.
        var packed = new long[3 * b];
        for (int i = 0; i < b; i++)
        {
            packed[i] = _nextToken[slots[i]];
            packed[b + i] = positions[i];
            packed[2 * b + i] = slots[i] * _pool.Capacity + positions[i];
        }
        var step = tensor(packed, dtype: ScalarType.Int64).to(_model.Device);
        var ids = step.narrow(0, 0, b).view(b, 1);
        var angles = _model.Rope.Angles(step.narrow(0, b, b).view(b, 1), _model.Dtype);
        using var rows = new RaggedRows(slots, positions.Select(p => p + 1).ToArray(), _pool.Capacity, _model.Device);
        var attention = new PoolAttention(_pool, slots, step.narrow(0, 2 * b, b), rows, _model.Scale);
        var hidden = _model.RunLayers(_model.Embed(ids), angles, attention);
        var next = _model.Logits(hidden).view(b, -1).argmax(-1).cpu().data<long>().ToArray();
        var result = new Dictionary<int, long>(b);
        for (int i = 0; i < b; i++) _nextToken[slots[i]] = result[slots[i]] = next[i];
        return result;
    }

    /// <summary>Each row's key and value into its slot, then the ragged attention over the slots.</summary>
    private sealed class PoolAttention(KvPool pool, int[] slots, Tensor flatRows, RaggedRows rows, double scale) : IAttentionBackend
    {
        public Tensor Attend(int layer, Tensor hidden, QkvProjection p)
        {
            pool.AppendStep(layer, slots, flatRows, p.K, p.V);
            return FusedAttention.AttendRagged(p.Q, pool.Keys(layer), pool.Values(layer), rows, scale).Out;
        }
    }

    public void Dispose() => _pool.Dispose();
}
