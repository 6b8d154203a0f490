using ApbCluster.Model.Forward;
using ApbCluster.Model;
using ApbCluster.Model.Attention;
using ApbCluster.Model.Layers;
using ApbCluster.Parallel.Collectives;
using ApbCluster.Parallel.Compression;
using ApbCluster.Parallel.Kernels;
using ApbCluster.Parallel.Plan;
using static TorchSharp.torch;

namespace ApbCluster.Parallel.Strategies;

/// <summary>
/// APB (docs/algorithm.md, Phase 1). Host h runs [anchor; local] (host 0: local only), and per layer:
/// compressor scores its local tokens -> top-l_p compressed block -> all-gather -> passing block from
/// hosts 0..h-1 in host order -> APB attention -> MLP. The anchor is dropped after the last layer.
/// Query-aware compression reads the question's queries from the anchor's question rows (the anchor
/// embeds the question), re-projected at the question's true positions n, n+1, ...; host 0 then also
/// runs the anchor, as a probe its local rows never attend to.
/// </summary>
public class ApbStrategy(ICompressor? compressor) : PrefillStrategy
{
    public override ParallelMode Mode => ParallelMode.Apb;
    public override bool SupportsCritiPrefill => true;
    public ICompressor? Compressor { get; } = compressor;

    /// <summary>How local rows are computed (<see cref="ApbKernel"/>); the default is the fastest on Hopper.</summary>
    public ApbKernel Kernel { get; init; } = ApbKernel.Merge;

    // When the anchor holds no question row (an explicit l_a at or below the template offset, or blocks
    // shorter than it), a question-driven compressor has nothing to score with: select by seeded random
    // choice instead of failing the query.
    private static readonly ICompressor NoQuestionFallback = new RandomCompressor(seed: 0);

    private ICompressor? EffectiveCompressor(ApbPlan plan) =>
        Compressor is { NeedsQuestion: true } && QuestionRows(plan).Length == 0 ? NoQuestionFallback : Compressor;

    private bool NeedsQuestion(ApbPlan plan) => plan.PassingLength > 0 && EffectiveCompressor(plan)?.NeedsQuestion == true;

    protected override HostRows Rows(int host, ApbPlan plan, PrefillRequest request)
    {
        if (plan.PassingLength > 0 && Compressor is null) throw new ArgumentException("APB with passing needs a compressor.");
        int la = host > 0 || NeedsQuestion(plan) ? plan.AnchorLength : 0;
        var anchor = plan.AnchorTokens(request.Document, request.Question).Take(la);
        var ids = anchor.Concat(plan.LocalTokens(host, request.Document, request.PadId)).ToArray();
        var pos = Enumerable.Range(0, la).Select(x => (long)x).Concat(plan.LocalPositions(host)).ToArray();
        return new HostRows(ids, pos, la);
    }

    protected override Tensor Attend(LayerContext ctx, int layer, Tensor hidden, QkvProjection p)
    {
        var plan = ctx.Plan;
        int la = ctx.Rows.Prefix, ll = ctx.Rows.Local, host = ctx.Host;
        Tensor? passK = null, passV = null;
        if (plan.PassingLength > 0 && plan.Hosts > 1)
        {
            Tensor packed;
            using (ctx.Timer.Measure(PhaseTimer.Compressor)) packed = Compress(ctx, layer, hidden, p, la, ll);
            Tensor[] parts;
            using (ctx.Timer.Measure(PhaseTimer.Passing)) parts = ctx.Collective.AllGather(packed, $"layer {layer} passing block");
            if (host > 0) (passK, passV) = CompressedBlock.Unpack(cat(parts.Take(host).ToArray(), 1));
            foreach (var t in parts.Skip(host)) t.Dispose();
        }
        // CritiPrefill prunes only the local causal part, segmented from the local block's global start.
        var local = ll == 0 ? null : ctx.SelectCritical(layer, p.Q.narrow(1, la, ll), p.K.narrow(1, la, ll), ctx.Rows.Positions[la]);
        using var _ = ctx.Timer.Measure(PhaseTimer.Attention);
        if (host == 0 && la > 0) return ProbeAndLocal(p, la, ll, ctx.Model.Scale, local);
        return ApbAttention.Attend(p.Q, p.K, p.V, la, passK, passV, ctx.Model.Scale, Kernel, local).Out;
    }

    /// <summary>This host's compressed block, K and V packed [B, l_p, n_kv, 2D]. The last host's block
    /// is read by nobody: it sends zeros of the right shape instead of scoring.</summary>
    private Tensor Compress(LayerContext ctx, int layer, Tensor hidden, QkvProjection p, int la, int ll)
    {
        var plan = ctx.Plan;
        var kLocal = p.K.narrow(1, la, ll);
        if (ctx.Host == plan.LastHost)
            return zeros(kLocal.shape[0], plan.PassingLength, kLocal.shape[2], 2 * kLocal.shape[3], dtype: kLocal.dtype, device: kLocal.device);
        Tensor? questionQ = null;
        var compressor = EffectiveCompressor(plan)!;
        if (compressor.NeedsQuestion)
        {
            var rows = QuestionRows(plan);
            var truePos = TorchConstants.Positions(plan.DocumentLength, plan.DocumentLength + rows.Length, hidden.device);
            questionQ = ctx.Model.Layers[layer].Project(hidden.narrow(1, rows.Start, rows.Length), truePos).Q;
        }
        var input = new CompressorInput(layer, ctx.Host, p.QPre.narrow(1, la, ll), p.KPre.narrow(1, la, ll), p.VPre.narrow(1, la, ll), kLocal, questionQ);
        var scores = compressor.Score(input);
        var block = TokenSelector.Select(scores, ctx.Positions.narrow(0, la, ll), plan.AnchorLength, plan.PassingLength, kLocal, p.V.narrow(1, la, ll));
        return block.Packed();
    }

    /// <summary>Where the question sits in the anchor (rows [offset, offset + l_q) cut to l_a).</summary>
    private static (int Start, int Length) QuestionRows(ApbPlan plan)
    {
        if (!plan.EmbedQuestion) return (0, 0);
        int start = Math.Min(plan.TemplateOffset, plan.DocumentLength);
        return (start, Math.Clamp(plan.AnchorLength - start, 0, plan.QuestionLength));
    }

    /// <summary>Host 0 with a probe anchor: anchor rows causal over the anchor, local rows causal over local only.</summary>
    private static Tensor ProbeAndLocal(QkvProjection p, int la, int ll, double scale, CritiPrefillSelection? local)
    {
        var a = FusedAttention.Attend(p.Q.narrow(1, 0, la), p.K.narrow(1, 0, la), p.V.narrow(1, 0, la), true, scale).Out;
        var (ql, kl, vl) = (p.Q.narrow(1, la, ll), p.K.narrow(1, la, ll), p.V.narrow(1, la, ll));
        var l = local is null ? FusedAttention.Attend(ql, kl, vl, true, scale).Out
            : CritiPrefillAttention.Attend(ql, kl, vl, local, scale).Out.to(p.Q.dtype);
        return cat([a, l], 1);
    }
}

/// <summary>Star attention: APB with the anchor = the first block (no question) and no passing.</summary>
public sealed class StarStrategy() : ApbStrategy(null)
{
    public override ParallelMode Mode => ParallelMode.Star;
}
