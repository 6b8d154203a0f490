using ApbCluster.Model.Attention;
using static TorchSharp.torch;

namespace ApbCluster.Parallel.Kernels;

/// <summary>How APB's local rows are computed (both give the spec's mask; they differ in speed and rounding).</summary>
public enum ApbKernel
{
    /// <summary>Two fused calls (unmasked over passing+anchor, causal over local) merged by log-sum-exp in fp32.
    /// On Hopper both are cuDNN calls, about 1.8x the flash kernel: the fast default.</summary>
    Merge,

    /// <summary>One bottom-right causal flash call over [passing; anchor; local] keys: a single rounding of the
    /// output, as dense attention has (bf16 results closest to dense), at the flash kernel's speed. CPU and
    /// fp32 CUDA have no bottom-right kernel and fall back to the merge.</summary>
    Single,
}

/// <summary>
/// Host h's attention in APB (spec Phase 1 step 5), from fused flash calls merged by log-sum-exp,
/// never a dense mask. Queries [anchor; local], keys [passing; anchor; local]:
///   anchor rows: causal over the anchor only;
///   local rows:  every passing and anchor key (no mask) merged with causal local keys.
/// With no anchor and no passing (host 0) this is plain causal attention.
/// With a CritiPrefill selection for the local rows, their causal local part is pruned (anchor and passing keys stay
/// visible to every local row; anchor rows stay full causal); it takes the merge path whatever the kernel.
/// q [B, la+ll, Hq, D]; k, v [B, la+ll, Hkv, D]; passing K/V [B, lp, Hkv, D] or null.
/// Returns out [B, la+ll, Hq, D] and lse [B, Hq, la+ll] fp32.
/// </summary>
public static class ApbAttention
{
    public static (Tensor Out, Tensor Lse) Attend(Tensor q, Tensor k, Tensor v, int anchorLength,
        Tensor? passingK, Tensor? passingV, double scale, ApbKernel kernel = ApbKernel.Merge, CritiPrefillSelection? localSelection = null)
    {
        long s = q.shape[1], local = s - anchorLength;
        bool hasPassing = passingK is not null && passingK.shape[1] > 0;
        if (anchorLength == 0 && !hasPassing)
        {
            if (localSelection is null) return FusedAttention.Attend(q, k, v, causal: true, scale);
            var (o, l) = CritiPrefillAttention.Attend(q, k, v, localSelection, scale);
            return (o.to(q.dtype), l);
        }

        using var scope = NewDisposeScope();
        var qa = q.narrow(1, 0, anchorLength);
        var ql = q.narrow(1, anchorLength, local);
        var ka = k.narrow(1, 0, anchorLength);
        var va = v.narrow(1, 0, anchorLength);
        var kl = k.narrow(1, anchorLength, local);
        var vl = v.narrow(1, anchorLength, local);

        var anchorRows = FusedAttention.Attend(qa, ka, va, causal: true, scale);
        // Passing and anchor keys are all visible to local rows: one unmasked call over both.
        var kCtx = hasPassing ? cat([passingK!, ka], 1) : ka;
        var vCtx = hasPassing ? cat([passingV!, va], 1) : va;
        var localRows = kernel == ApbKernel.Single && localSelection is null
            ? FusedAttention.Attend(ql, cat([kCtx, kl], 1), cat([vCtx, vl], 1), causal: true, scale)
            : LseMerge.Merge(
                FusedAttention.Attend(ql, kCtx, vCtx, causal: false, scale),
                localSelection is null
                    ? FusedAttention.Attend(ql, kl, vl, causal: true, scale)
                    : CritiPrefillAttention.Attend(ql, kl, vl, localSelection, scale));

        var outT = cat([anchorRows.Out, localRows.Out.to(q.dtype)], 1); // the merge's fp32, rounded once
        var lse = cat([anchorRows.Lse, localRows.Lse], 2);
        return (outT.MoveToOuterDisposeScope(), lse.MoveToOuterDisposeScope());
    }
}
