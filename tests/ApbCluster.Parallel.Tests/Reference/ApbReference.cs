using ApbCluster.Parallel.Plan;
using static TorchSharp.torch;

namespace ApbCluster.Parallel.Tests.Reference;

/// <summary>
/// APB prefill from scratch in float64, all hosts advanced together layer by layer:
/// the anchor (document start with the question inserted at the template offset, cut to l_a, positions
/// 0..l_a-1); per layer each passing host's scores over its block, the selection (<see cref="ReferenceSelection"/>),
/// host h's passing block = the selected K/V of hosts 0..h-1 at this layer, in host order; then one explicit mask
/// over keys [passing; anchor; local]: anchor rows causal over the anchor, local rows every passing and anchor key
/// and causal over their own block. Host 0 runs its block plainly causal.
/// </summary>
internal sealed class ApbReference(Fp64Llama m, ApbPlan plan, long[] document, long[] question)
{
    /// <summary>The anchor's tokens, built from the definition.</summary>
    public long[] Anchor()
    {
        int offset = plan.EmbedQuestion ? Math.Min(plan.TemplateOffset, document.Length) : document.Length;
        var withQuestion = document.Take(offset).Concat(plan.EmbedQuestion ? question : []).Concat(document.Skip(offset));
        return withQuestion.Take(plan.AnchorLength).ToArray();
    }

    /// <summary>Anchor rows that hold question tokens, and the question index of the first.</summary>
    private (int Row, int Count) QuestionInAnchor()
    {
        if (!plan.EmbedQuestion) return (0, 0);
        int offset = Math.Min(plan.TemplateOffset, document.Length);
        return (offset, Math.Clamp(plan.AnchorLength - offset, 0, question.Length));
    }

    public HostReference[] Run(ReferenceScorer scorer, RecordingCompressor engine, SelectionStats stats)
    {
        int hosts = plan.Hosts, la = plan.AnchorLength, lp = plan.PassingLength;
        var anchor = Anchor();
        var anchorPos = Enumerable.Range(0, la).Select(p => (long)p).ToArray();
        // Per host: rows [anchor (hosts > 0); local], their positions, and the current hidden states.
        var prefix = new int[hosts];
        var pos = new long[hosts][];
        var x = new Tensor[hosts];
        for (int h = 0; h < hosts; h++)
        {
            prefix[h] = h == 0 ? 0 : la;
            var (ids, localPos) = HostReference.LocalRows(plan, h, document);
            pos[h] = anchorPos.Take(prefix[h]).Concat(localPos).ToArray();
            x[h] = m.Embed(anchor.Take(prefix[h]).Concat(ids).ToArray());
        }
        // The anchor alone (it sees only itself): the question's queries are its question rows, re-projected
        // at the question's true positions n, n+1, ...
        var anchorX = m.Embed(anchor);
        var (qRow, qCount) = QuestionInAnchor();
        if (scorer.NeedsQuestion && qCount == 0) throw new ArgumentException($"{plan}: the anchor holds no question row");
        var questionPos = Enumerable.Range(plan.DocumentLength, qCount).Select(p => (long)p).ToArray();

        var keys = new Tensor[hosts][];
        var values = new Tensor[hosts][];
        for (int h = 0; h < hosts; h++) { keys[h] = new Tensor[m.Layers]; values[h] = new Tensor[m.Layers]; }
        for (int layer = 0; layer < m.Layers; layer++)
        {
            var proj = Enumerable.Range(0, hosts).Select(h => m.Project(layer, x[h], pos[h])).ToArray();
            Tensor? questionQ = scorer.NeedsQuestion ? m.Project(layer, anchorX.narrow(0, qRow, qCount), questionPos).Q : null;

            // Each passing host's selection (the last host's block is read by nobody).
            var selected = new long[hosts][][];
            for (int h = 0; h < hosts - 1 && lp > 0; h++)
            {
                var local = Local(proj[h], prefix[h]);
                var scores = scorer.Score(layer, local, questionQ);
                var engineScores = engine.Scores(layer, h) ?? throw new InvalidOperationException($"host {h} did not score layer {layer}");
                ReferenceAssert.Close(engineScores, scores, $"{plan}: host {h} layer {layer} compressor scores");
                selected[h] = ReferenceSelection.Select(scores, pos[h].Skip(prefix[h]).ToArray(), la, lp, engineScores,
                    $"{plan}: host {h} layer {layer}", stats);
            }

            anchorX = AttendAndFinish(layer, anchorX, m.Project(layer, anchorX, anchorPos), 0, null, null);
            for (int h = 0; h < hosts; h++)
            {
                var (passK, passV) = h > 0 && lp > 0 ? Passing(proj, prefix, selected, h) : (null, null);
                keys[h][layer] = proj[h].K;
                values[h][layer] = proj[h].V;
                x[h] = AttendAndFinish(layer, x[h], proj[h], prefix[h], passK, passV);
            }
        }
        return Enumerable.Range(0, hosts)
            .Select(h => HostReference.Keep(pos[h], plan.DocumentLength, prefix[h], x[h], keys[h], values[h])).ToArray();
    }

    private static Qkv64 Local(Qkv64 p, int prefix)
    {
        long ll = p.Q.shape[0] - prefix;
        return new Qkv64(p.QPre.narrow(0, prefix, ll), p.KPre.narrow(0, prefix, ll), p.V.narrow(0, prefix, ll),
            p.Q.narrow(0, prefix, ll), p.K.narrow(0, prefix, ll));
    }

    /// <summary>Host h's passing block: per KV head g, the tokens hosts 0..h-1 selected for g, in host order.</summary>
    private static (Tensor K, Tensor V) Passing(Qkv64[] proj, int[] prefix, long[][][] selected, int host)
    {
        long hkv = proj[0].K.shape[1];
        Tensor Gather(Func<Qkv64, Tensor> part) => stack(Enumerable.Range(0, (int)hkv).Select(g =>
            cat(Enumerable.Range(0, host).Select(e =>
                part(proj[e]).narrow(0, prefix[e], proj[e].K.shape[0] - prefix[e]).select(1, g).index_select(0, tensor(selected[e][g]))).ToArray(), 0)).ToArray(), 1);
        return (Gather(p => p.K), Gather(p => p.V));
    }

    /// <summary>Rows [prefix (anchor); local] over keys [passing; anchor; local] under APB's mask, then the MLP.</summary>
    private Tensor AttendAndFinish(int layer, Tensor x, Qkv64 p, int prefix, Tensor? passK, Tensor? passV)
    {
        int rows = (int)x.shape[0], lp = passK is null ? 0 : (int)passK.shape[0];
        var visible = new bool[rows, lp + rows];
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < lp + rows; j++)
            {
                int key = j - lp; // index among [anchor; local] rows; negative = passing
                visible[i, j] = i < prefix
                    ? key >= 0 && key <= i                      // anchor rows: causal over the anchor
                    : key < prefix || key <= i;                 // local rows: passing, anchor, causal local
            }
        var k = passK is null ? p.K : cat([passK, p.K], 0);
        var v = passV is null ? p.V : cat([passV, p.V], 0);
        return m.Finish(layer, x, m.Attend(p.Q, k, v, visible));
    }
}
