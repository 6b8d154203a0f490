using ApbCluster.Model.Tokenization;

namespace ApbCluster.Evaluation.Tasks;

/// <summary>
/// Generates <see cref="EvalSample"/>s for any tokenizer: the same (task, length, seed, depth) always gives
/// the same sample. The prompt (BOS + header + haystack with needles, then the question) hits the requested
/// token count within 1%: filler words are counted with the tokenizer, the last word may be cut, and the
/// whole document is then measured exactly and refitted if needed.
/// </summary>
public sealed class SampleGenerator(TextTokenizer tokenizer)
{
    /// <summary>The document's first text; APB embeds the question right after it (template offset).</summary>
    public const string Header = "Context:\n";
    public const double Tolerance = 0.01;

    private readonly Dictionary<string, int> _costs = [];

    public TextTokenizer Tokenizer => tokenizer;

    /// <param name="depth">Where the asked needle goes (0..1 of the document); null = drawn from the seed.</param>
    public EvalSample Generate(EvalTask task, int targetTokens, long seed, double? depth = null)
    {
        var f = new FillerText(MixSeed(task, targetTokens, seed));
        double d = Math.Clamp(depth ?? f.Depth(), 0, 1);
        var content = TaskRecipes.Create(task, d, f);
        int fillerSeed = f.Rng.Next();
        string question = $"\n\nQuestion: {content.Question}\nAnswer:";
        var questionIds = Ids(question, bos: false);
        int headerTokens = tokenizer.Encode(Header, addBos: true).Count;
        var needles = content.Needles.OrderBy(n => n.Depth).ToList();
        int needleTokens = needles.Sum(n => Cost(n.Text));
        int budget = targetTokens - headerTokens - needleTokens - questionIds.Length;
        if (budget < 16)
            throw new ArgumentException($"{targetTokens} tokens are too few for {task.Name()}: its needles and question alone take {targetTokens - budget}.");
        int tolerance = Math.Max(1, (int)(targetTokens * Tolerance));
        for (int attempt = 0; attempt < 8; attempt++)
        {
            var haystack = Haystack(fillerSeed, budget);
            var slots = PlaceNeedles(haystack, needles, headerTokens, headerTokens + budget + needleTokens);
            var (document, prefixes) = Assemble(haystack.Words, needles, slots);
            var documentIds = Ids(document, bos: true);
            int diff = targetTokens - (documentIds.Length + questionIds.Length);
            if (Math.Abs(diff) <= tolerance)
            {
                var positions = prefixes.Select(p => tokenizer.Encode(p, addBos: true).Count).ToArray();
                return new EvalSample(task, targetTokens, seed, d, document, question, content.Answers, documentIds, questionIds,
                    headerTokens, needles.Select(n => n.Text).ToArray(), positions);
            }
            budget += diff; // the per-word counts were off (merges across words): refit to the measured error
        }
        throw new InvalidOperationException($"could not fit {task.Name()} to {targetTokens} tokens within {Tolerance:P0} with this tokenizer.");
    }

    /// <summary>Filler words whose token costs sum to at most <paramref name="budget"/>; the last one may be cut.
    /// Boundaries: word indices where a sentence ends (needles go there), with the filler tokens before them.</summary>
    private (List<string> Words, List<(int Index, int Tokens)> Boundaries) Haystack(int fillerSeed, int budget)
    {
        var filler = new FillerText(fillerSeed);
        var words = new List<string>();
        var boundaries = new List<(int, int)> { (0, 0) };
        int used = 0;
        while (true)
        {
            foreach (var w in filler.Sentence().Split(' '))
            {
                int c = Cost(w);
                if (used + c > budget)
                {
                    // Cut the word to fill the last few tokens (byte-level tokenizers need ~5 tokens a word).
                    for (int len = w.Length - 1; len > 0; len--)
                        if (used + Cost(w[..len]) <= budget) { words.Add(w[..len]); break; }
                    return (words, boundaries);
                }
                words.Add(w);
                used += c;
                if (w.EndsWith('.')) boundaries.Add((words.Count, used));
            }
        }
    }

    /// <summary>For each needle (ascending depth), the word index it goes before: the sentence boundary whose
    /// token position is closest to depth x document length, never before the previous needle's.</summary>
    private static int[] PlaceNeedles((List<string> Words, List<(int Index, int Tokens)> Boundaries) haystack, List<Needle> needles,
        int headerTokens, int documentTokens)
    {
        var slots = new int[needles.Count];
        int from = 0, before = 0;
        for (int j = 0; j < needles.Count; j++)
        {
            double target = needles[j].Depth * documentTokens;
            int best = from;
            for (int b = from; b < haystack.Boundaries.Count; b++)
                if (Math.Abs(headerTokens + haystack.Boundaries[b].Tokens + before - target) <
                    Math.Abs(headerTokens + haystack.Boundaries[best].Tokens + before - target)) best = b;
            slots[j] = haystack.Boundaries[best].Index;
            from = best;
            before += EstimatedNeedleTokens(needles[j]);
        }
        return slots;
    }

    // Rough share of a needle in the placement (the exact position is measured afterwards).
    private static int EstimatedNeedleTokens(Needle n) => n.Text.Length / 4 + 1;

    /// <summary>Header + words with the needles inserted; for each needle, the document text before it.</summary>
    private static (string Document, string[] Prefixes) Assemble(List<string> words, List<Needle> needles, int[] slots)
    {
        var sb = new System.Text.StringBuilder(Header);
        var prefixes = new string[needles.Count];
        int next = 0;
        for (int i = 0; i <= words.Count; i++)
        {
            while (next < needles.Count && slots[next] == i)
            {
                prefixes[next] = sb.ToString();
                Append(sb, needles[next++].Text);
            }
            if (i < words.Count) Append(sb, words[i]);
        }
        return (sb.ToString(), prefixes);
    }

    private static void Append(System.Text.StringBuilder sb, string piece)
    {
        if (sb.Length > Header.Length) sb.Append(' ');
        sb.Append(piece);
    }

    /// <summary>Tokens of a piece as it appears in running text (after a space).</summary>
    private int Cost(string piece)
    {
        if (!_costs.TryGetValue(piece, out int c)) _costs[piece] = c = tokenizer.Encode(" " + piece, addBos: false).Count;
        return c;
    }

    private long[] Ids(string text, bool bos) => tokenizer.Encode(text, addBos: bos).Select(i => (long)i).ToArray();

    /// <summary>A stable seed (string.GetHashCode is randomised per process).</summary>
    private static int MixSeed(EvalTask task, int tokens, long seed) =>
        unchecked((int)(seed * 1_000_003 + (long)task * 7_919 + tokens * 31L) ^ 0x5eed);
}
