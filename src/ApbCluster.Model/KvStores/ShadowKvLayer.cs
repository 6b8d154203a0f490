using static TorchSharp.torch;

namespace ApbCluster.Model.KvStores;

/// <summary>
/// One layer of a ShadowKV store. Over the sparse range: <see cref="U"/> [S_sparse, r] and <see cref="SV"/> [H, r, D]
/// (pre-RoPE keys), <see cref="Landmarks"/> [H, M, D] with their chunk ids <see cref="LandmarkChunks"/> [H, M], and
/// <see cref="V"/> [H, S_sparse, D] (device or host). <see cref="ExactK"/>/<see cref="ExactV"/> [1, E, H, D]: each KV
/// head's outlier chunks (post-RoPE), then the local tail. Every tensor owns its storage (none is a view into the
/// shard), so the byte counts are what the layer keeps.
/// </summary>
internal sealed class ShadowKvLayer(Tensor u, Tensor sv, Tensor landmarks, Tensor landmarkChunks, Tensor v, Tensor exactK, Tensor exactV)
    : IDisposable
{
    public Tensor U { get; } = u;
    public Tensor SV { get; } = sv;
    public Tensor Landmarks { get; } = landmarks;
    public Tensor LandmarkChunks { get; } = landmarkChunks;
    public Tensor V { get; } = v;
    public Tensor ExactK { get; } = exactK;
    public Tensor ExactV { get; } = exactV;

    private IEnumerable<Tensor> All => [U, SV, Landmarks, LandmarkChunks, V, ExactK, ExactV];

    public long DeviceBytes => All.Where(t => !(ValuesOnHost && ReferenceEquals(t, V))).Sum(Bytes);

    /// <summary>Set when <see cref="V"/> is the host copy (counted as host bytes even on a CPU run).</summary>
    public bool ValuesOnHost { get; init; }

    public long HostBytes => ValuesOnHost ? Bytes(V) : 0;

    public static long Bytes(Tensor t) => t.NumberOfElements * t.ElementSize;

    public void Dispose()
    {
        foreach (var t in All) t.Dispose();
    }
}
