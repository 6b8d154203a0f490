using TorchSharp;
using static TorchSharp.torch;

namespace ApbCluster.Model.Attention;

/// <summary>
/// Fused scaled-dot-product attention that also returns the log-sum-exp of every query row,
/// so partial results over disjoint key sets can be merged exactly (ring, APB, Phase 2).
/// Layout: q [B, Sq, Hq, D], k/v [B, Sk, Hkv, D] (the projections' natural layout; no transposes),
/// Hq a multiple of Hkv (GQA). Returns out [B, Sq, Hq, D] in q's dtype and lse [B, Hq, Sq] in fp32.
/// Causal masks are bottom-right aligned: query i sees keys 0..Sk-Sq+i (a query block at the end
/// of its keys, as in a KV-cached decode step).
/// GPU: cuDNN's fused kernel for large blocks (about 1.8x the flash kernel on Hopper for square prefill blocks),
/// libtorch's flash kernel (native GQA, bottom-right causal) otherwise; APB_ATTENTION_BACKEND=flash|cudnn
/// forces one; fp32 on CUDA takes the memory-efficient kernel. Small blocks go to flash because libtorch keeps
/// cuDNN's execution graphs in a per-thread cache keyed by shape: a decode step (one query, one more key each
/// time) or a fresh host thread would build a new graph on every call, which costs far more than the kernel.
/// CPU: libtorch's CPU flash kernel. Both are internal aten ops, reached through TorchScript because TorchSharp does
/// not bind them. cuDNN's kernel fails now and then on H200 ("mha_graph.execute(...).is_good()",
/// pytorch/pytorch#190321; here in 4 of 14 processes of one GPU evaluation): the call is then redone with the flash
/// kernel, which serves the process from then on (<see cref="CudnnDisabledBecause"/> says why), unless cuDNN was forced.
/// </summary>
public static partial class FusedAttention
{
    private const string Script = """
def gpu_flash(q: Tensor, k: Tensor, v: Tensor, causal: bool, scale: float) -> Tuple[Tensor, Tensor]:
    r = torch._flash_attention_forward(q, k, v, None, None, q.size(1), k.size(1), 0.0, causal, False, scale=scale)
    return r[0], r[1]

def gpu_cudnn(q: Tensor, k: Tensor, v: Tensor, causal: bool, scale: float) -> Tuple[Tensor, Tensor]:
    r = torch._scaled_dot_product_cudnn_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), None, True, 0.0, causal, False, scale=scale)
    return r[0].transpose(1, 2), r[1]

def gpu_efficient(q: Tensor, k: Tensor, v: Tensor, causal: bool, scale: float) -> Tuple[Tensor, Tensor]:
    r = torch._scaled_dot_product_efficient_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), None, True, 0.0, causal, scale=scale)
    return r[0].transpose(1, 2), r[1]

def cpu_flash(q: Tensor, k: Tensor, v: Tensor, causal: bool, scale: float) -> Tuple[Tensor, Tensor]:
    r = torch._scaled_dot_product_flash_attention_for_cpu(q, k, v, 0.0, causal, scale=scale)
    return r[0], r[1]

""";

    private static readonly string GpuBackend =
        (Environment.GetEnvironmentVariable("APB_ATTENTION_BACKEND") ?? "auto").ToLowerInvariant();

    /// <summary>Query rows from which cuDNN serves (unless forced): prefill blocks of long prompts, where one graph
    /// serves every layer and the kernel's speed pays for building it.</summary>
    public const long CudnnMinQueries = 4096;

    private static volatile string? _cudnnDisabledBecause;

    /// <summary>Null while cuDNN's kernel serves; else the error that made this process switch to the flash kernel.</summary>
    public static string? CudnnDisabledBecause => _cudnnDisabledBecause;

    private static readonly Lazy<jit.CompilationUnit> Unit = new(() => jit.compile(Script));

    /// <summary>Compiles the TorchScript once (a compile error can abort the process, so do it early).</summary>
    public static void Warm() => _ = Unit.Value;

    // TorchSharp's jit invoke turns a bool or double argument into a temporary Scalar and keeps only its native
    // handle, so a GC on any thread before the native call reads it can finalize (free) it: seen as
    // "INTERNAL ASSERT ... c10::Scalar::toLong" in THSJIT_CompilationUnit_Invoke under parallel tests. Scalars
    // passed as Scalar objects are used as they are: these stay alive (static, or referenced until after the call).
    private static readonly Scalar CausalTrue = true.ToScalar(), CausalFalse = false.ToScalar();

    private static (Tensor, Tensor) Invoke(string function, Tensor q, Tensor k, Tensor v, bool causal, double scale)
    {
        var s = scale.ToScalar();
        try
        {
            return ((Tensor, Tensor))Unit.Value.invoke(function, q, k, v, causal ? CausalTrue : CausalFalse, s);
        }
        finally
        {
            s.Dispose(); // also keeps s reachable until the call has returned
        }
    }

    public static (Tensor Out, Tensor Lse) Attend(Tensor q, Tensor k, Tensor v, bool causal, double scale)
    {
        long b = q.shape[0], sq = q.shape[1], hq = q.shape[2], sk = k.shape[1], hkv = k.shape[2];
        if (hq % hkv != 0) throw new ArgumentException($"query heads ({hq}) must be a multiple of key/value heads ({hkv}).");
        if (sq == 0 || sk == 0)
            return (zeros_like(q), full(new[] { b, hq, sq }, TorchConstants.MinusInfinity, dtype: ScalarType.Float32, device: q.device));
        if (causal && sk < sq)
            throw new ArgumentException($"causal attention needs at least as many keys ({sk}) as queries ({sq}).");

        if (q.device.type == DeviceType.CUDA && q.dtype == ScalarType.Float32)
            return AttendCudaFloat32(q, k, v, causal, scale);
        if (q.device.type == DeviceType.CUDA)
        {
            // cuDNN's causal mask is top-left aligned: it serves non-causal calls and square causal ones.
            bool cudnn = GpuBackend == "cudnn" || (GpuBackend != "flash" && _cudnnDisabledBecause is null && sq >= CudnnMinQueries);
            cudnn &= !causal || sq == sk;
            if (cudnn)
            {
                // cuDNN wants equal head counts; expanding K/V is what stock SDPA callers do too.
                long groups = hq / hkv;
                var ke = groups == 1 ? k : k.repeat_interleave(groups, dim: 2);
                var ve = groups == 1 ? v : v.repeat_interleave(groups, dim: 2);
                try
                {
                    var (co, clse) = Invoke("gpu_cudnn", q, ke, ve, causal, scale);
                    return (co, clse.reshape(b, hq, sq).to(ScalarType.Float32));
                }
                catch (Exception e) when (GpuBackend != "cudnn" && e.Message.Contains("mha_graph", StringComparison.Ordinal))
                {
                    _cudnnDisabledBecause = e.Message.Split('\n').FirstOrDefault(l => l.Contains("mha_graph", StringComparison.Ordinal))?.Trim() ?? e.Message;
                }
            }
            var (o, lse) = Invoke("gpu_flash", q, k, v, causal, scale);
            return (o, lse);
        }
        return AttendCpu(q, k, v, causal, scale);
    }

    /// <summary>fp32 on CUDA (verification runs; flash and cuDNN take only 16-bit types): the memory-efficient
    /// kernel, whose causal mask is top-left aligned and whose LSE rows are padded to a multiple of 32.</summary>
    private static (Tensor Out, Tensor Lse) AttendCudaFloat32(Tensor q, Tensor k, Tensor v, bool causal, double scale)
    {
        long b = q.shape[0], sq = q.shape[1], hq = q.shape[2], sk = k.shape[1];
        if (causal && sk > sq)
        {
            var prefix = AttendCudaFloat32(q, k.narrow(1, 0, sk - sq), v.narrow(1, 0, sk - sq), false, scale);
            var tail = AttendCudaFloat32(q, k.narrow(1, sk - sq, sq), v.narrow(1, sk - sq, sq), true, scale);
            return LseMerge.Merge(prefix, tail); // fp32 in, fp32 out
        }
        long groups = hq / k.shape[2];
        var ke = groups == 1 ? k : k.repeat_interleave(groups, dim: 2);
        var ve = groups == 1 ? v : v.repeat_interleave(groups, dim: 2);
        var (o, lse) = Invoke("gpu_efficient", q, ke, ve, causal, scale);
        return (o, lse.narrow(2, 0, sq).reshape(b, hq, sq));
    }

    private static (Tensor Out, Tensor Lse) AttendCpu(Tensor q, Tensor k, Tensor v, bool causal, double scale)
    {
        long sq = q.shape[1], sk = k.shape[1];
        // The CPU kernel's causal mask is top-left aligned: for a query block at the end of a longer
        // key range, attend the prefix without a mask and the square tail causally, then merge.
        if (causal && sk > sq)
        {
            var prefix = AttendCpu(q, k.narrow(1, 0, sk - sq), v.narrow(1, 0, sk - sq), false, scale);
            var tail = AttendCpu(q, k.narrow(1, sk - sq, sq), v.narrow(1, sk - sq, sq), true, scale);
            var (merged, mergedLse) = LseMerge.Merge(prefix, tail);
            return (merged.to(q.dtype), mergedLse);
        }
        long groups = q.shape[2] / k.shape[2];
        // The CPU kernel wants [B, H, S, D] and equal head counts.
        var qh = q.transpose(1, 2);
        var kh = (groups == 1 ? k : k.repeat_interleave(groups, dim: 2)).transpose(1, 2);
        var vh = (groups == 1 ? v : v.repeat_interleave(groups, dim: 2)).transpose(1, 2);
        var (o, lse) = Invoke("cpu_flash", qh, kh, vh, causal, scale);
        return (o.transpose(1, 2), lse.to(ScalarType.Float32));
    }
}
