using ApbCluster.Evaluation.Running;
using ApbCluster.Evaluation.Scoring;
using ApbCluster.Evaluation.Tasks;
using ApbCluster.Model.Attention;
using ApbCluster.Model.Forward;
using ApbCluster.Model.Layers;
using ApbCluster.Model.Tokenization;
using ApbCluster.Parallel.Compression;
using ApbCluster.Parallel.Phase2;
using ApbCluster.Parallel.Plan;
using ApbCluster.Parallel.Serving;
using ApbCluster.Parallel.Strategies;
using static TorchSharp.torch;

namespace ApbCluster.Evaluation.Analysis;

/// <summary>What the probe runs: evaluation samples (same seeds and depths as `apb eval`) through APB on H virtual hosts.</summary>
public sealed record ProbeOptions
{
    public required IReadOnlyList<EvalTask> Tasks { get; init; }
    public int Length { get; init; } = 8192;
    public int Hosts { get; init; } = 4;
    public int Samples { get; init; } = 4;
    public long Seed { get; init; }
    public int AnchorDivisor { get; init; } = ApbPlan.DefaultAnchorDivisor;
    /// <summary>The compressor APB runs with (the others are only scored): query, softmax or retaining.</summary>
    public string RunWith { get; init; } = "query";
}

/// <summary>
/// Why a compressor passes what it passes (docs/evaluation.md, "Why apb-query scores below star"). For each sample it
/// runs the dense prompt once, keeping per layer the question's post-RoPE queries and the attention of the question rows,
/// then runs APB with a compressor that, at every (layer, host) where APB selects, also scores the same local keys with
/// every rule of <see cref="SelectionScorers"/>, the retaining heads, random scores and the dense attention itself,
/// selects top-l_p per KV head from each exactly as <see cref="TokenSelector"/> does, and counts how many of the needle's
/// tokens each selection holds.
/// </summary>
public sealed class SelectionProbe(LlamaModel model, TextTokenizer tokenizer, RetainingHeadCompressor? heads)
{
    public const string Shipped = "query-aware (shipped): mean q.k, anchor's question";
    public const string DenseQuestion = "mean q.k, dense prompt's question";
    public const string SoftmaxAnchor = "softmax, anchor's question";
    public const string SoftmaxDense = "softmax, dense prompt's question";
    public const string Oracle = "dense attention of the question";
    public const string Retaining = "retaining heads";
    public const string Random = "random";

    private readonly LlamaModel _model = model;
    private readonly TextTokenizer _tokenizer = tokenizer;
    private readonly RetainingHeadCompressor? _heads = heads;
    private readonly SampleGenerator _generator = new(tokenizer);
    private readonly long[] _stopIds = tokenizer.StopIds(model.Config).Select(i => (long)i).ToArray();

    public ProbeReport Run(ProbeOptions o, Action<string>? progress = null)
    {
        var report = new ProbeReport(o, _model.Config.NumLayers);
        foreach (var task in o.Tasks)
            for (int i = 0; i < o.Samples; i++)
            {
                var s = _generator.Generate(task, o.Length, o.Seed + i, depth: (i + 0.5) / o.Samples);
                bool correct = RunSample(s, o, report);
                report.Answers.Add((task, correct));
                progress?.Invoke($"{task.Name()} sample {i}: {(correct ? "right" : "wrong")}");
            }
        return report;
    }

    private bool RunSample(EvalSample s, ProbeOptions o, ProbeReport report)
    {
        int n = s.DocumentIds.Length;
        var plan = ServingPlan.Create(ParallelMode.Apb, o.Hosts, n, s.QuestionIds.Length, s.TemplateOffset,
            new PlanChoices { AnchorDivisor = o.AnchorDivisor }, _model.Config);
        report.Plan ??= plan.ToString();
        var needle = NeedleMask(s);
        var answer = AnswerMask(s);
        report.NeedleTokensPassable += needle.Where((m, p) => m && p >= plan.AnchorLength && p < plan.Blocks[plan.LastHost].Start).Count();
        report.NeedleTokens += needle.Count(m => m);
        using var scope = NewDisposeScope();
        var dense = DenseCapture(s, needle, report);
        if (report.QuestionRowsText is null)
        {
            int start = Math.Min(plan.TemplateOffset, n), len = Math.Clamp(plan.AnchorLength - start, 0, plan.QuestionLength);
            var rows = plan.AnchorTokens(s.DocumentIds, s.QuestionIds).Skip(start).Take(len).Select(x => (int)x);
            report.QuestionRowsText = _tokenizer.Decode(rows, skipSpecial: false);
            report.QuestionText = _tokenizer.Decode(s.QuestionIds.Select(x => (int)x), skipSpecial: false);
        }
        var recorder = new Recorder(this, plan, dense, needle, answer, report, s.Seed, o.RunWith);
        int maxNew = _tokenizer.Encode(" " + s.AnswerText, addBos: false).Count + EvalRunner.ExtraNewTokens;
        var results = ParallelRun.InProcess(_model, plan, new ApbStrategy(recorder), new PrefillRequest(s.DocumentIds, s.QuestionIds),
            new Phase2Options { MaxNewTokens = maxNew, StopIds = _stopIds });
        foreach (var (shard, _) in results) shard.Dispose();
        var ids = results[^1].Result.Tokens.Where(t => !_stopIds.Contains(t)).Select(t => (int)t);
        return AnswerScorer.IsCorrect(s, _tokenizer.Decode(ids, skipSpecial: true));
    }

    /// <summary>Document tokens of the needle sentences that hold an answer (the distractors' are not marked).</summary>
    private bool[] NeedleMask(EvalSample s)
    {
        var mask = new bool[s.DocumentIds.Length];
        for (int j = 0; j < s.Needles.Count; j++)
        {
            if (!s.Answers.Any(a => s.Needles[j].Contains(a, StringComparison.Ordinal))) continue;
            int len = _tokenizer.Encode(" " + s.Needles[j], addBos: false).Count;
            for (int p = s.NeedlePositions[j]; p < Math.Min(s.NeedlePositions[j] + len, mask.Length); p++) mask[p] = true;
        }
        return mask;
    }

    /// <summary>Document tokens where an answer's token sequence (as it follows a space) occurs.</summary>
    private bool[] AnswerMask(EvalSample s)
    {
        var mask = new bool[s.DocumentIds.Length];
        foreach (var a in s.Answers)
        {
            var t = _tokenizer.Encode(" " + a, addBos: false).Select(x => (long)x).ToArray();
            for (int p = 0; p + t.Length <= mask.Length; p++)
                if (s.DocumentIds.AsSpan(p, t.Length).SequenceEqual(t))
                    for (int j = 0; j < t.Length; j++) mask[p + j] = true;
        }
        return mask;
    }

    /// <summary>Per layer of the dense prompt: the question rows' post-RoPE queries [1, l_q, Hq, D] and the question's
    /// attention over the document [1, n, n_kv] (both fp32); the needle mass per question row goes to the report.</summary>
    private (Tensor Q, Tensor Mass)[] DenseCapture(EvalSample s, bool[] needle, ProbeReport report)
    {
        int n = s.DocumentIds.Length, lq = s.QuestionIds.Length;
        var ids = s.DocumentIds.Concat(s.QuestionIds).ToArray();
        using var noGrad = no_grad();
        lock (_model.Rope) _model.Rope.EnsureCapacity(ids.Length + 1);
        var positions = arange(ids.Length, dtype: ScalarType.Int64).to(_model.Device);
        var h = _model.Embed(tensor(ids, dtype: ScalarType.Int64).reshape(1, -1).to(_model.Device));
        var angles = _model.Rope.Angles(positions, h.dtype);
        var capture = new DenseCaptureAttention(_model, n, lq, tensor(needle).to(_model.Device), report);
        _model.RunLayers(h, angles, capture).Dispose();
        return capture.Layers;
    }

    /// <summary>Dense causal attention that records, per layer, the question rows' queries and their attention mass.</summary>
    private sealed class DenseCaptureAttention(LlamaModel model, int n, int lq, Tensor needle, ProbeReport report) : IAttentionBackend
    {
        public (Tensor Q, Tensor Mass)[] Layers { get; } = new (Tensor, Tensor)[model.Layers.Count];

        public Tensor Attend(int layer, Tensor hidden, QkvProjection p)
        {
            var q = p.Q.narrow(1, n, lq).to(ScalarType.Float32);
            var (mass, perRow) = SelectionScorers.DenseAttention(q, p.K, n, model.Scale, needle);
            report.AddRowMass(layer, perRow.data<float>().ToArray());
            Layers[layer] = (q.MoveToOuterDisposeScope(), mass.MoveToOuterDisposeScope()); // out of the layer's scope
            return FusedAttention.Attend(p.Q, p.K, p.V, true, model.Scale).Out;
        }
    }

    /// <summary>Runs APB with one rule and scores every rule on the same inputs (called on the hosts' threads).</summary>
    private sealed class Recorder(SelectionProbe probe, ApbPlan plan, (Tensor Q, Tensor Mass)[] dense, bool[] needle, bool[] answer,
        ProbeReport report, long seed, string runWith) : ICompressor
    {
        private readonly RandomCompressor _random = new(seed);

        public bool NeedsQuestion => true;

        public Tensor Score(CompressorInput x)
        {
            using var scope = NewDisposeScope();
            var qa = x.QuestionQ!.to(ScalarType.Float32);
            var (qd, mass) = dense[x.Layer];
            double scale = probe._model.Scale;
            var block = plan.Blocks[x.Host];
            var positions = plan.LocalPositions(x.Host);
            var pos = tensor(positions, dtype: ScalarType.Int64).to(x.K.device);
            var inDoc = pos.lt(plan.DocumentLength).reshape(1, -1, 1);
            var oracle = mass.index_select(1, pos.clamp_max(plan.DocumentLength - 1)).masked_fill(inDoc.logical_not(), ApbCluster.Model.TorchConstants.MinusInfinity);
            var scores = new Dictionary<string, Tensor>
            {
                [Shipped] = SelectionScorers.MeanLogit(qa, x.K),
                [DenseQuestion] = SelectionScorers.MeanLogit(qd, x.K),
                [SoftmaxAnchor] = SelectionScorers.MeanSoftmax(qa, x.K, scale),
                [SoftmaxDense] = SelectionScorers.MeanSoftmax(qd, x.K, scale),
                [Oracle] = oracle,
                [Random] = _random.Score(x),
            };
            if (probe._heads is not null) scores[Retaining] = probe._heads.Score(x);
            // Layer 0's queries depend only on the token and its position: anchor and dense prompt must agree there.
            if (x.Layer == 0) report.NoteLayer0Difference(qa.sub(qd).abs().max().item<float>());
            report.NoteQueryCosine(x.Layer, nn.functional.cosine_similarity(qa.mean([1]).flatten(), qd.mean([1]).flatten(), 0).item<float>());
            foreach (var (name, sc) in scores)
            {
                var idx = TokenSelector.Select(sc, pos, plan.AnchorLength, plan.PassingLength, x.K, x.K).Indices[0]; // [l_p, n_kv]
                report.AddSelection(name, x.Layer, Measure(idx, positions, block));
            }
            var run = runWith switch
            {
                "softmax" => scores[SoftmaxAnchor],
                "retaining" => scores.GetValueOrDefault(Retaining) ?? throw new ArgumentException("--run-with retaining needs retaining heads."),
                _ => scores[Shipped],
            };
            return run.MoveToOuterDisposeScope();
        }

        /// <summary>Per KV head: needle and answer tokens of the block (outside the anchor) selected, and selections in the block's last eighth.</summary>
        private SelectionCounts Measure(Tensor idx, long[] positions, HostBlock block)
        {
            var chosen = idx.to(CPU).data<long>().ToArray();
            long heads = idx.shape[1], count = idx.shape[0];
            var c = new SelectionCounts();
            long tail = block.Start + block.Length * 7 / 8;
            for (int g = 0; g < heads; g++)
            {
                var set = new HashSet<long>();
                for (int j = 0; j < count; j++) set.Add(positions[chosen[j * heads + g]]);
                foreach (long p in positions)
                {
                    if (p < plan.AnchorLength || p >= plan.DocumentLength) continue;
                    if (needle[p]) { c.Needle++; if (set.Contains(p)) c.NeedleChosen++; }
                    if (answer[p]) { c.Answer++; if (set.Contains(p)) c.AnswerChosen++; }
                }
                c.Chosen += set.Count;
                c.ChosenInTail += set.Count(p => p >= tail);
            }
            return c;
        }
    }
}
