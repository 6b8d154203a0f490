using ApbCluster.Model.Attention;
using ApbCluster.Model.Config;
using ApbCluster.Model.Layers;
using TorchSharp;
using static TorchSharp.torch;

namespace ApbCluster.Model.KvStores;

/// <summary>
/// ShadowKV (SPEC-shadowkv.md) as a decode-time store of one prompt's context: per layer the pre-RoPE keys as a
/// low-rank factorisation, chunk landmarks, exact outlier and local chunks, and the values on the device or in host
/// memory. Each step selects, per KV head, the chunks whose landmarks score highest for the step's queries, rebuilds
/// their keys (U rows x SV, RoPE at their true positions), gathers their values and attends [exact + selected] in one
/// fused call. The (out, lse) it returns is exact over what it attended, so merges with other key sets stay exact.
/// With rank n_kv x D and a budget covering every chunk it attends every key: dense decode up to rounding.
/// </summary>
public sealed class ShadowKvStore : IKvStore
{
    private readonly IReadOnlyList<ShadowKvLayer> _layers;
    private readonly Tensor _positions;  // [S_sparse] int64 on the device: the sparse tokens' true positions
    private readonly Tensor _tokenTable; // [n, chunk] int64 on the device: chunk -> its tokens
    private readonly Tensor _headOffsets; // [H, 1] int64 on the device: h x chunks, each head's first row in host V
    private readonly ShadowKvChunkCache[] _caches; // per layer; used when V is in host memory
    private readonly RotaryEmbedding _rope;
    private readonly Device _device;

    private ShadowKvStore(ShadowKvLayout layout, ShadowKvOptions options, IReadOnlyList<ShadowKvLayer> layers,
        Tensor positions, Tensor tokenTable, Tensor headOffsets, RotaryEmbedding rope, Device device)
    {
        _headOffsets = headOffsets;
        _caches = layers.Select(_ => new ShadowKvChunkCache()).ToArray();
        Layout = layout;
        Options = options;
        _layers = layers;
        _positions = positions;
        _tokenTable = tokenTable;
        _rope = rope;
        _device = device;
    }

    public string Kind => "shadowkv";

    public ShadowKvLayout Layout { get; }

    public ShadowKvOptions Options { get; }

    public long Length => Layout.Tokens;

    /// <summary>What the store holds now; with V on the host the chunk caches fill at the first decode step.</summary>
    public long DeviceBytes => _layers.Sum(l => l.DeviceBytes) + _caches.Sum(c => c.DeviceBytes)
        + ShadowKvLayer.Bytes(_positions) + ShadowKvLayer.Bytes(_tokenTable) + ShadowKvLayer.Bytes(_headOffsets);

    public long HostBytes => _layers.Sum(l => l.HostBytes);

    /// <summary>With V in host memory, the selected chunks served from the previous step's copy on the device (hits) and
    /// those copied over (fetched), over all layers and steps so far; (0, 0) with V on the device.</summary>
    public (long Hits, long Fetched) ChunkReuse => (_caches.Sum(c => c.Hits), _caches.Sum(c => c.Fetched));

    /// <summary>
    /// Converts a prompt's prefilled K/V (per layer [1, S, n_kv, D], post-RoPE, at <paramref name="positions"/>) into a
    /// store. With <paramref name="disposeInputs"/> each layer's input K and V are freed as soon as that layer is
    /// converted, so the full KV and the store never both sit on the device; the caller's later Dispose of them is
    /// harmless (TorchSharp frees a tensor once).
    /// </summary>
    public static ShadowKvStore Build(IReadOnlyList<Tensor> keys, IReadOnlyList<Tensor> values, IReadOnlyList<long> positions,
        LlamaModel model, ShadowKvOptions options, bool disposeInputs = false)
    {
        options.Validate();
        var c = model.Config;
        if (keys.Count != c.NumLayers || values.Count != c.NumLayers)
            throw new ArgumentException($"ShadowKV needs K and V for all {c.NumLayers} layers (got {keys.Count} and {values.Count}).");
        var layout = ShadowKvLayout.For(positions.Count, c.NumKvHeads, c.HeadDim, options);
        using var noGrad = no_grad();
        var device = model.Device;
        var pos = tensor(positions.ToArray(), dtype: ScalarType.Int64).to(device);
        var sparsePositions = pos.narrow(0, 0, layout.SparseTokens).clone().DetachFromDisposeScope();
        var tokenTable = arange(layout.SparseTokens, dtype: ScalarType.Int64, device: device)
            .view(layout.SparseChunks, options.Chunk).DetachFromDisposeScope();
        using var chunks = layout.SparseChunks.ToScalar();
        var headOffsets = arange(c.NumKvHeads, dtype: ScalarType.Int64, device: device).mul(chunks).view(-1, 1).DetachFromDisposeScope();
        var layers = new List<ShadowKvLayer>();
        try
        {
            for (int i = 0; i < c.NumLayers; i++)
            {
                layers.Add(BuildLayer(keys[i], values[i], pos, layout, model, options, tokenTable));
                if (!disposeInputs) continue;
                keys[i].Dispose();
                values[i].Dispose();
            }
            return new ShadowKvStore(layout, options, layers, sparsePositions, tokenTable, headOffsets, model.Rope, device);
        }
        catch
        {
            foreach (var l in layers) l.Dispose();
            sparsePositions.Dispose();
            tokenTable.Dispose();
            headOffsets.Dispose();
            throw;
        }
    }

    private static ShadowKvLayer BuildLayer(Tensor k, Tensor v, Tensor positions, ShadowKvLayout layout, LlamaModel model,
        ShadowKvOptions options, Tensor tokenTable)
    {
        using var scope = NewDisposeScope();
        long s = layout.Tokens, sparse = layout.SparseTokens, h = model.Config.NumKvHeads, d = model.Config.HeadDim;
        if (k.dim() != 4 || k.shape[0] != 1 || k.shape[1] != s || k.shape[2] != h || k.shape[3] != d || !k.shape.SequenceEqual(v.shape))
            throw new ArgumentException($"ShadowKV wants K and V as [1, {s}, {h}, {d}] (got [{string.Join(", ", k.shape)}] and [{string.Join(", ", v.shape)}]).");
        var dtype = model.Dtype;
        var kSparse = k[0].narrow(0, 0, sparse);                         // [S_sparse, H, D] post-RoPE
        var vSparse = v[0].narrow(0, 0, sparse);
        var pre = ShadowKvMath.InverseRope(kSparse, positions.narrow(0, 0, sparse), model.Rope);
        Tensor u, sv, landmarks, landmarkChunks, outliers;
        if (sparse > 0)
        {
            (u, sv) = ShadowKvMath.Factorise(pre, layout.Rank);
            var all = ShadowKvMath.Landmarks(kSparse, options.Chunk);  // [H, n, D]
            (outliers, landmarkChunks) = ShadowKvMath.SplitOutliers(ShadowKvMath.MinCosine(kSparse, all, options.Chunk), layout.OutlierChunks);
            landmarks = all.gather(1, landmarkChunks.unsqueeze(-1).expand(h, layout.LandmarkChunks, d));
        }
        else
        {
            u = empty(new[] { 0L, 0L }, dtype, model.Device);
            sv = empty(new[] { h, 0L, d }, dtype, model.Device);
            landmarks = empty(new[] { h, 0L, d }, dtype, model.Device);
            landmarkChunks = outliers = empty(new[] { h, 0L }, ScalarType.Int64, model.Device);
        }
        // Outlier chunks per KV head, exact and post-RoPE, then the local tail: [1, E, H, D].
        var outlierTokens = tokenTable.index_select(0, outliers.flatten()).view(h, -1);
        var (outK, outV) = (PerHead(kSparse, outlierTokens), PerHead(vSparse, outlierTokens));
        var exactK = cat([outK, k.narrow(1, sparse, s - sparse)], 1);
        var exactV = cat([outV, v.narrow(1, sparse, s - sparse)], 1);
        var vKept = options.Values == ShadowKvValues.Host ? ToHost(vSparse.permute(1, 0, 2)) : Own(vSparse.permute(1, 0, 2), dtype);
        var layer = new ShadowKvLayer(Own(u, dtype), Own(sv, dtype), Own(landmarks, dtype), Own(landmarkChunks, ScalarType.Int64), vKept,
            Own(exactK, dtype), Own(exactV, dtype)) { ValuesOnHost = options.Values == ShadowKvValues.Host };
        foreach (var t in new[] { layer.U, layer.SV, layer.Landmarks, layer.LandmarkChunks, layer.V, layer.ExactK, layer.ExactV })
            t.DetachFromDisposeScope();
        return layer;
    }

    /// <summary>Rows <paramref name="tokens"/> [H, T] of x [S, H, D], each KV head its own: [1, T, H, D].</summary>
    private static Tensor PerHead(Tensor x, Tensor tokens)
    {
        long h = x.shape[1], d = x.shape[2];
        return x.permute(1, 0, 2).gather(1, tokens.unsqueeze(-1).expand(h, tokens.shape[1], d)).permute(1, 0, 2).unsqueeze(0);
    }

    /// <summary>A copy with storage of its own (never a view that would keep the shard's full tensor alive).</summary>
    private static Tensor Own(Tensor t, ScalarType dtype) => t.to(dtype, copy: true).contiguous();

    /// <summary>Values in host memory: pinned when CUDA is up, so copies to the device can be asynchronous.</summary>
    private static Tensor ToHost(Tensor t)
    {
        var host = t.to(CPU).to(t.dtype, copy: true).contiguous();
        return cuda.is_available() ? host.pin_memory() : host;
    }

    public (Tensor Out, Tensor Lse) Attend(int layer, Tensor q, double scale)
    {
        var l = _layers[layer];
        if (Layout.SelectedChunks == 0) return FusedAttention.Attend(q, l.ExactK, l.ExactV, causal: false, scale);
        long h = l.SV.shape[0], r = l.SV.shape[1], d = l.SV.shape[2];
        var chunks = ShadowKvMath.Select(q, l.Landmarks, l.LandmarkChunks, Layout.SelectedChunks, scale); // [H, k]
        var tokens = _tokenTable.index_select(0, chunks.flatten()).view(h, -1);                          // [H, T]
        long t = tokens.shape[1];
        var flat = tokens.flatten();
        var rebuilt = l.U.index_select(0, flat).view(h, t, r).bmm(l.SV);                                 // [H, T, D] pre-RoPE
        var keys = _rope.Apply(rebuilt.unsqueeze(2), _positions.index_select(0, flat).view(h, t)).squeeze(2);
        // Host values: the chunks not chosen last step are gathered on the host and copied synchronously. TorchSharp
        // binds no CUDA streams, so the copy is not overlapped with the key rebuild above (the spec's copy stream).
        var values = l.ValuesOnHost
            ? _caches[layer].Values(l.V.view(h, -1, Options.Chunk, d), chunks, _headOffsets, _device)
            : l.V.gather(1, tokens.unsqueeze(-1).expand(h, t, d));
        var k = cat([l.ExactK, keys.permute(1, 0, 2).unsqueeze(0).to(q.dtype)], 1);
        var v = cat([l.ExactV, values.permute(1, 0, 2).unsqueeze(0).to(q.dtype)], 1);
        return FusedAttention.Attend(q, k, v, causal: false, scale);
    }

    /// <summary>What a store for <paramref name="tokens"/> context tokens keeps (device, host) once decoding runs, from
    /// the layout alone: admission can count it before prefill.</summary>
    public static (long Device, long Host) EstimateBytes(long tokens, ModelConfig config, ShadowKvOptions options)
    {
        var layout = ShadowKvLayout.For(tokens, config.NumKvHeads, config.HeadDim, options);
        var (device, host) = layout.LayerBytes(config.NumKvHeads, config.HeadDim, ShadowKvLayout.ElementBytes(config), options.Values);
        return (device * config.NumLayers + layout.SharedBytes(config.NumKvHeads), host * config.NumLayers);
    }

    public void Dispose()
    {
        foreach (var l in _layers) l.Dispose();
        foreach (var c in _caches) c.Dispose();
        _positions.Dispose();
        _tokenTable.Dispose();
        _headOffsets.Dispose();
    }
}
