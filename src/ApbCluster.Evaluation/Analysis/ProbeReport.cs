using System.Globalization;
using System.Text;
using ApbCluster.Evaluation.Tasks;

namespace ApbCluster.Evaluation.Analysis;

/// <summary>Token counts of one selection, summed over KV heads (needle and answer tokens of the block outside the anchor).</summary>
public sealed class SelectionCounts
{
    public long Needle, NeedleChosen, Answer, AnswerChosen, Chosen, ChosenInTail;

    public void Add(SelectionCounts o)
    {
        Needle += o.Needle; NeedleChosen += o.NeedleChosen; Answer += o.Answer; AnswerChosen += o.AnswerChosen;
        Chosen += o.Chosen; ChosenInTail += o.ChosenInTail;
    }
}

/// <summary>What <see cref="SelectionProbe"/> found, summed over samples and the hosts that select; written as Markdown.
/// Filled from the hosts' threads, so every update takes the lock.</summary>
public sealed class ProbeReport(ProbeOptions options, int layers)
{
    private readonly object _lock = new();
    private readonly Dictionary<(string Scorer, int Layer), SelectionCounts> _selections = [];
    private readonly double[] _cosSum = new double[layers];
    private readonly int[] _cosCount = new int[layers];
    // Needle mass of each question row, indexed from the question's end (0 = its last token), per layer.
    private readonly Dictionary<int, double[]> _rowMass = [];
    private readonly Dictionary<int, int> _rowCount = [];
    private float _layer0Difference;

    public ProbeOptions Options => options;
    /// <summary>Largest |q_anchor - q_dense| at layer 0, where a query depends only on its token and position: 0 when
    /// the compressor scores with the question's own rows at the question's own positions.</summary>
    public float Layer0Difference { get { lock (_lock) return _layer0Difference; } }

    /// <summary>Summed counts of one scorer over all layers (null if it never ran).</summary>
    public SelectionCounts? Totals(string scorer)
    {
        lock (_lock)
        {
            var parts = _selections.Where(kv => kv.Key.Scorer == scorer).Select(kv => kv.Value).ToList();
            if (parts.Count == 0) return null;
            var sum = new SelectionCounts();
            parts.ForEach(sum.Add);
            return sum;
        }
    }
    public string? Plan { get; set; }
    public string? QuestionText { get; set; }
    public string? QuestionRowsText { get; set; }
    public long NeedleTokens { get; set; }
    /// <summary>Needle tokens outside the anchor and before the last host's block: those only passing can show the last host.</summary>
    public long NeedleTokensPassable { get; set; }
    public List<(EvalTask Task, bool Correct)> Answers { get; } = [];

    public void AddSelection(string scorer, int layer, SelectionCounts c)
    {
        lock (_lock)
        {
            if (!_selections.TryGetValue((scorer, layer), out var sum)) _selections[(scorer, layer)] = sum = new SelectionCounts();
            sum.Add(c);
        }
    }

    public void NoteLayer0Difference(float d) { lock (_lock) _layer0Difference = Math.Max(_layer0Difference, d); }

    public void NoteQueryCosine(int layer, float c) { lock (_lock) { _cosSum[layer] += c; _cosCount[layer]++; } }

    public void AddRowMass(int layer, float[] perRow)
    {
        lock (_lock)
            for (int j = 0; j < perRow.Length; j++)
            {
                int fromEnd = perRow.Length - 1 - j;
                if (!_rowMass.TryGetValue(fromEnd, out var m)) { _rowMass[fromEnd] = m = new double[layers]; _rowCount[fromEnd] = 0; }
                m[layer] += perRow[j];
                if (layer == 0) _rowCount[fromEnd]++;
            }
    }

    public string Markdown(string command)
    {
        var o = options;
        var sb = new StringBuilder();
        var inv = CultureInfo.InvariantCulture;
        sb.AppendLine($"# What APB's compressors pass: {o.Length} tokens, H = {o.Hosts}, {o.Samples} samples of {string.Join(", ", o.Tasks.Select(t => t.Name()))}");
        sb.AppendLine();
        sb.AppendLine($"Command: `{command}`  ");
        sb.AppendLine($"Plan (first sample): `{Plan}`  ");
        sb.AppendLine($"APB ran with: {o.RunWith}; its answers: {Answers.Count(a => a.Correct)} of {Answers.Count} right (" +
            string.Join(", ", o.Tasks.Select(t => $"{t.Name()} {Answers.Count(a => a.Task == t && a.Correct)}/{Answers.Count(a => a.Task == t)}")) + ").");
        sb.AppendLine();
        sb.AppendLine("## The question rows the compressor scores with");
        sb.AppendLine();
        sb.AppendLine($"- The question (Phase 2): `{Escape(QuestionText)}`; the anchor's question rows: `{Escape(QuestionRowsText)}`.");
        sb.AppendLine($"- Layer 0 (queries depend only on token and position): largest |q_anchor - q_dense| over all samples and hosts = {_layer0Difference.ToString("G3", inv)}.");
        sb.AppendLine("- Cosine of the mean question query, anchor vs dense prompt, per layer: " +
            string.Join(", ", Enumerable.Range(0, layers).Select(l => $"L{l} {(_cosCount[l] == 0 ? double.NaN : _cosSum[l] / _cosCount[l]).ToString("F3", inv)}")) + ".");
        sb.AppendLine($"- Needle tokens (the needles holding an answer): {NeedleTokens}, of which {NeedleTokensPassable} lie outside the anchor and before the last host's block (only passing shows those to the last host).");
        sb.AppendLine();
        Table(sb, "Needle tokens passed (% of the block's needle tokens outside the anchor, per KV head)", c => Pct(c.NeedleChosen, c.Needle));
        Table(sb, "Answer tokens passed (% of the block's answer-value tokens outside the anchor, per KV head)", c => Pct(c.AnswerChosen, c.Answer));
        Table(sb, "Selections in the last eighth of their block (%; 12.5 = no preference for the end)", c => Pct(c.ChosenInTail, c.Chosen));
        sb.AppendLine("## Where the dense prompt's question looks");
        sb.AppendLine();
        sb.AppendLine("Attention mass on the needle tokens (%, mean over heads and samples) of each question row, counted from the question's end.");
        sb.AppendLine();
        sb.AppendLine("| question row | " + string.Join(" | ", Enumerable.Range(0, layers).Select(l => $"L{l}")) + " |");
        sb.AppendLine("|---|" + string.Concat(Enumerable.Repeat("---:|", layers)));
        foreach (int r in _rowMass.Keys.Order().Take(12))
            sb.AppendLine($"| last{(r == 0 ? "" : " - " + r)} | " + string.Join(" | ", _rowMass[r].Select(m => (100 * m / _rowCount[r]).ToString("F1", inv))) + " |");
        sb.AppendLine();
        return sb.ToString();
    }

    private void Table(StringBuilder sb, string title, Func<SelectionCounts, string> cell)
    {
        sb.AppendLine($"## {title}");
        sb.AppendLine();
        sb.AppendLine("| scorer | " + string.Join(" | ", Enumerable.Range(0, layers).Select(l => $"L{l}")) + " | all |");
        sb.AppendLine("|---|" + string.Concat(Enumerable.Repeat("---:|", layers + 1)));
        foreach (var scorer in _selections.Keys.Select(k => k.Scorer).Distinct())
        {
            var all = new SelectionCounts();
            var cells = Enumerable.Range(0, layers).Select(l =>
            {
                var c = _selections.GetValueOrDefault((scorer, l)) ?? new SelectionCounts();
                all.Add(c);
                return cell(c);
            }).ToList();
            sb.AppendLine($"| {scorer} | {string.Join(" | ", cells)} | {cell(all)} |");
        }
        sb.AppendLine();
    }

    private static string Pct(long a, long b) => b == 0 ? "-" : (100.0 * a / b).ToString("F1", CultureInfo.InvariantCulture);

    private static string Escape(string? s) => (s ?? "").Replace("\n", "\\n").Replace("`", "'");
}
