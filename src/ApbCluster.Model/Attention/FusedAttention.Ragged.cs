using TorchSharp;
using static TorchSharp.torch;

namespace ApbCluster.Model.Attention;

/// <summary>
/// Where each decode row of a batch finds its keys: sequence b's keys are the first <see cref="Lengths"/>[b] rows of
/// slot <see cref="Slots"/>[b] of a pool [slots, capacity, Hkv, D]. Built once per step (one small upload of the
/// offsets); every layer's attention reuses it.
/// </summary>
public sealed class RaggedRows : IDisposable
{
    public RaggedRows(IReadOnlyList<int> slots, IReadOnlyList<long> lengths, long capacity, Device device)
    {
        if (slots.Count != lengths.Count || slots.Count == 0) throw new ArgumentException("a ragged batch needs one length per slot, and at least one slot.");
        Slots = slots.ToArray();
        Lengths = lengths.ToArray();
        MaxLength = Lengths.Max();
        if (device.type != DeviceType.CUDA) return;
        // [cu_q (B+1) | cu_k (B+1) | used_k (B)] in one int32 upload: flash's varlen offsets, with seqused_k giving each
        // slot's filled length (its keys start at slot x capacity and need not end where the next slot starts).
        int b = Slots.Length;
        var packed = new int[3 * b + 2];
        for (int i = 0; i <= b; i++) packed[i] = i;
        for (int i = 0; i < b; i++) packed[b + 1 + i] = checked((int)(Slots[i] * capacity));
        packed[2 * b + 1] = checked((int)(Slots[^1] * capacity + Lengths[^1]));
        for (int i = 0; i < b; i++) packed[2 * b + 2 + i] = checked((int)Lengths[i]);
        var all = tensor(packed, dtype: ScalarType.Int32).to(device);
        all.DetachFromDisposeScope();
        _offsets = all;
        CuQ = all.narrow(0, 0, b + 1);
        CuK = all.narrow(0, b + 1, b + 1);
        UsedK = all.narrow(0, 2 * b + 2, b);
        foreach (var t in new[] { CuQ, CuK, UsedK }) t.DetachFromDisposeScope();
    }

    private readonly Tensor? _offsets;

    public int[] Slots { get; }
    public long[] Lengths { get; }
    public long MaxLength { get; }
    internal Tensor? CuQ { get; }
    internal Tensor? CuK { get; }
    internal Tensor? UsedK { get; }

    public void Dispose()
    {
        CuQ?.Dispose();
        CuK?.Dispose();
        UsedK?.Dispose();
        _offsets?.Dispose();
    }
}

public static partial class FusedAttention
{
    private const string RaggedScript = """
def gpu_flash_ragged(q: Tensor, k: Tensor, v: Tensor, cu_q: Tensor, cu_k: Tensor, max_k: int, used_k: Tensor, scale: float) -> Tuple[Tensor, Tensor]:
    r = torch._flash_attention_forward(q, k, v, cu_q, cu_k, 1, max_k, 0.0, False, False, scale=scale, seqused_k=used_k)
    return r[0], r[1]

""";

    private static readonly Lazy<jit.CompilationUnit> RaggedUnit = new(() => jit.compile(RaggedScript));

    private static volatile string? _raggedDisabledBecause;

    /// <summary>Compiles the ragged kernel's TorchScript (its schema is checked here, on any device).</summary>
    public static void WarmRagged() => _ = RaggedUnit.Value;

    /// <summary>Null while the one-kernel ragged path serves; else why this process attends each sequence on its own.</summary>
    public static string? RaggedKernelDisabledBecause => _raggedDisabledBecause;

    /// <summary>
    /// One decode row per sequence, each attending only its own keys (no mask: a decode row sees all of them):
    /// q [B, 1, Hq, D], pools [slots, capacity, Hkv, D] -> out [B, 1, Hq, D] in q's dtype, lse [B, Hq, 1] fp32.
    /// CUDA 16-bit: one varlen flash call for the whole batch; elsewhere (CPU, fp32, or if that call fails) one fused
    /// call per sequence, the same maths.
    /// </summary>
    public static (Tensor Out, Tensor Lse) AttendRagged(Tensor q, Tensor keys, Tensor values, RaggedRows rows, double scale)
    {
        long b = q.shape[0], hq = q.shape[2], d = q.shape[3], hkv = keys.shape[2];
        if (q.shape[1] != 1 || b != rows.Slots.Length)
            throw new ArgumentException($"ragged attention takes one row per sequence: q [{string.Join(", ", q.shape)}] for {rows.Slots.Length} sequences.");
        if (q.device.type == DeviceType.CUDA && q.dtype != ScalarType.Float32 && _raggedDisabledBecause is null && rows.CuQ is not null)
        {
            var s = scale.ToScalar();
            var maxK = rows.MaxLength.ToScalar();
            try
            {
                var (o, lse) = ((Tensor, Tensor))RaggedUnit.Value.invoke("gpu_flash_ragged", q.view(b, hq, d), keys.view(-1, hkv, d), values.view(-1, hkv, d),
                    rows.CuQ, rows.CuK!, maxK, rows.UsedK!, s);
                // Flash's varlen LSE is [B, H, max_q] in some builds and [H, total_q] in others.
                var lseRows = lse.dim() == 3 ? lse.narrow(2, 0, 1) : lse.transpose(0, 1).unsqueeze(-1);
                return (o.view(b, 1, hq, d), lseRows.to(ScalarType.Float32));
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                _raggedDisabledBecause = e.Message.Split('\n')[0];
            }
            finally
            {
                s.Dispose();
                maxK.Dispose();
            }
        }
        var outs = new Tensor[b];
        var lses = new Tensor[b];
        for (int i = 0; i < b; i++)
        {
            var k = keys.narrow(0, rows.Slots[i], 1).narrow(1, 0, rows.Lengths[i]);
            var v = values.narrow(0, rows.Slots[i], 1).narrow(1, 0, rows.Lengths[i]);
            (outs[i], lses[i]) = Attend(q.narrow(0, i, 1), k, v, causal: false, scale);
        }
        return (cat(outs, 0), cat(lses, 0));
    }
}
