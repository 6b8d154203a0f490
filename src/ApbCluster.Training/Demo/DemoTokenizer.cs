using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using ApbCluster.Evaluation.Tasks;
using ApbCluster.Model.Tokenization;

namespace ApbCluster.Training.Demo;

/// <summary>
/// The demo model's own small byte-level BPE tokenizer, in Hugging Face's tokenizer.json format (the form
/// <see cref="TextTokenizer"/> loads, like Llama 3's: split regex + ByteLevel, ignore_merges).
/// <list type="bullet">
/// <item>Ids 0-255: the 256 byte symbols (any text encodes).</item>
/// <item>Merges learned by plain BPE from the evaluation generators' text (filler words, keys, the prompt
/// template), so every word of the tasks is one token.</item>
/// <item>Fixed merges: " A".." Z" and every upper-case letter pair (a 5-letter variable name is always
/// 3 tokens: " A", "BC", "DE"; the split regex cuts upper-case runs into pairs), and every 2- and 3-digit
/// group (the regex cuts numbers into groups of at most 3 digits, as Llama 3's does: a 6-digit number is 2 tokens).</item>
/// <item>Two special tokens: &lt;|begin_of_text|&gt; (BOS) and &lt;|end_of_text|&gt; (EOS, ends an answer).</item>
/// </list>
/// Everything is deterministic: the same generators give the same file.
/// </summary>
public static class DemoTokenizer
{
    public const string FileName = "tokenizer.json", ConfigFileName = "tokenizer_config.json";
    public const string Bos = "<|begin_of_text|>";
    public const string Eos = "<|end_of_text|>";

    /// <summary>Llama 3's split with two alternatives in front: an upper-case letter pair, and a (space +) single
    /// upper-case letter that starts an upper-case run. Words with one capital ("The") are unchanged.</summary>
    public const string SplitPattern =
        @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|\p{Lu}{2}|[^\r\n\p{L}\p{N}]?\p{Lu}(?=\p{Lu})|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    /// <summary>Pieces seen fewer times than this in the corpus are not merged into one token.</summary>
    public const int MinPieceCount = 2;

    private static readonly Regex Split = new(SplitPattern, RegexOptions.Compiled);

    /// <summary>The files of the tokenizer: tokenizer.json and tokenizer_config.json contents, and the special ids.</summary>
    public sealed record Files(string TokenizerJson, string TokenizerConfigJson, int Size, int BosId, int EosId);

    /// <summary>Builds the tokenizer from the generators' text (see <see cref="Corpus"/>).</summary>
    public static Files Build() => Build(Corpus());

    public static Files Build(IEnumerable<string> corpus)
    {
        var symbols = ByteSymbols();
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var s in symbols) vocab[s] = vocab.Count;
        var merges = new List<(string A, string B)>();
        void AddMerge(string a, string b)
        {
            if (vocab.ContainsKey(a + b)) return;
            merges.Add((a, b));
            vocab[a + b] = vocab.Count;
        }

        foreach (var (a, b) in LearnMerges(corpus, symbols)) AddMerge(a, b);
        string space = symbols[' '];
        for (char x = 'A'; x <= 'Z'; x++) AddMerge(space, x.ToString());
        for (char x = 'A'; x <= 'Z'; x++)
            for (char y = 'A'; y <= 'Z'; y++) AddMerge(x.ToString(), y.ToString());
        for (char x = '0'; x <= '9'; x++)
            for (char y = '0'; y <= '9'; y++) AddMerge(x.ToString(), y.ToString());
        for (char x = '0'; x <= '9'; x++)
            for (char y = '0'; y <= '9'; y++)
                for (char z = '0'; z <= '9'; z++) AddMerge($"{x}{y}", z.ToString());

        int bos = vocab.Count, eos = vocab.Count + 1;
        return new Files(TokenizerJson(vocab, merges, bos, eos), TokenizerConfigJson(), eos + 1, bos, eos);
    }

    /// <summary>
    /// Text of the four tasks as the evaluation generators write it: whole samples (header, needles, question)
    /// made with a bytes-only tokenizer, plus many filler sentences and keys so that every word occurs.
    /// </summary>
    public static IEnumerable<string> Corpus()
    {
        var dir = Path.Combine(Path.GetTempPath(), "apb-bytes-tokenizer-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        try
        {
            File.WriteAllText(Path.Combine(dir, FileName), TokenizerJson(
                ByteSymbols().Select((s, i) => (s, i)).ToDictionary(p => p.s, p => p.i), [], 256, 257));
            var generator = new SampleGenerator(TextTokenizer.Load(dir));
            var texts = new List<string>();
            foreach (var task in EvalTasks.All)
                for (int seed = 0; seed < 4; seed++)
                {
                    var s = generator.Generate(task, 1200, -1 - seed, depth: 0.5);
                    texts.Add(s.Document + s.Question + " " + s.AnswerText);
                }
            var f = new FillerText(12345);
            var sb = new StringBuilder();
            for (int i = 0; i < 3000; i++) sb.Append(' ').Append(f.Sentence());
            texts.Add(sb.ToString());
            // The document's first word follows the header's newline, without a space.
            for (int i = 0; i < 300; i++) texts.Add(SampleGenerator.Header + f.Sentence());
            sb.Clear();
            for (int i = 0; i < 3000; i++) sb.Append(' ').Append(f.Key([]));
            texts.Add(sb.ToString());
            return texts;
        }
        finally
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        }
    }

    /// <summary>
    /// Plain BPE over the corpus's pre-tokens (byte symbols), most frequent pair first (ties: ordinal order),
    /// until no pair occurs <see cref="MinPieceCount"/> times. Upper-case pieces and digit groups are left to the fixed merges.
    /// </summary>
    private static List<(string A, string B)> LearnMerges(IEnumerable<string> corpus, string[] symbols)
    {
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var text in corpus)
            foreach (Match m in Split.Matches(text))
            {
                var piece = m.Value;
                var letters = piece.TrimStart(' ');
                if (piece.All(char.IsDigit) || (letters.Length > 0 && letters.All(char.IsUpper))) continue;
                counts[piece] = counts.GetValueOrDefault(piece) + 1;
            }
        var words = counts.Where(p => p.Value >= MinPieceCount).OrderBy(p => p.Key, StringComparer.Ordinal)
            .Select(p => (Symbols: Encoding.UTF8.GetBytes(p.Key).Select(b => symbols[b]).ToList(), Count: p.Value)).ToList();
        var merges = new List<(string, string)>();
        while (true)
        {
            var pairs = new Dictionary<(string, string), int>();
            foreach (var (syms, count) in words)
                for (int i = 0; i + 1 < syms.Count; i++)
                    pairs[(syms[i], syms[i + 1])] = pairs.GetValueOrDefault((syms[i], syms[i + 1])) + count;
            if (pairs.Count == 0) break;
            var best = pairs.OrderByDescending(p => p.Value)
                .ThenBy(p => p.Key.Item1, StringComparer.Ordinal).ThenBy(p => p.Key.Item2, StringComparer.Ordinal).First();
            if (best.Value < MinPieceCount) break;
            var (a, b) = best.Key;
            merges.Add((a, b));
            foreach (var (syms, _) in words)
                for (int i = 0; i + 1 < syms.Count; i++)
                    if (syms[i] == a && syms[i + 1] == b)
                    {
                        syms[i] = a + b;
                        syms.RemoveAt(i + 1);
                    }
        }
        return merges;
    }

    /// <summary>GPT-2's reversible byte to printable-character map (byte-level BPE vocabularies use it).</summary>
    public static string[] ByteSymbols()
    {
        var symbols = new string[256];
        int extra = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            symbols[b] = ((char)(printable ? b : 256 + extra++)).ToString();
        }
        return symbols;
    }

    private static string TokenizerJson(IReadOnlyDictionary<string, int> vocab, List<(string A, string B)> merges, int bos, int eos)
    {
        Dictionary<string, object> Added(int id, string content) => new()
        {
            ["id"] = id, ["content"] = content, ["single_word"] = false, ["lstrip"] = false,
            ["rstrip"] = false, ["normalized"] = false, ["special"] = true,
        };
        var doc = new Dictionary<string, object?>
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = new[] { Added(bos, Bos), Added(eos, Eos) },
            ["normalizer"] = null,
            ["pre_tokenizer"] = new Dictionary<string, object>
            {
                ["type"] = "Sequence",
                ["pretokenizers"] = new object[]
                {
                    new Dictionary<string, object>
                    {
                        ["type"] = "Split", ["pattern"] = new Dictionary<string, string> { ["Regex"] = SplitPattern },
                        ["behavior"] = "Isolated", ["invert"] = false,
                    },
                    new Dictionary<string, object>
                    {
                        ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = false,
                    },
                },
            },
            // Hugging Face adds BOS through the post-processor (our loader adds it in Encode(addBos: true)).
            ["post_processor"] = new Dictionary<string, object>
            {
                ["type"] = "TemplateProcessing",
                ["single"] = new object[]
                {
                    new Dictionary<string, object> { ["SpecialToken"] = new Dictionary<string, object> { ["id"] = Bos, ["type_id"] = 0 } },
                    new Dictionary<string, object> { ["Sequence"] = new Dictionary<string, object> { ["id"] = "A", ["type_id"] = 0 } },
                },
                ["pair"] = new object[]
                {
                    new Dictionary<string, object> { ["SpecialToken"] = new Dictionary<string, object> { ["id"] = Bos, ["type_id"] = 0 } },
                    new Dictionary<string, object> { ["Sequence"] = new Dictionary<string, object> { ["id"] = "A", ["type_id"] = 0 } },
                    new Dictionary<string, object> { ["SpecialToken"] = new Dictionary<string, object> { ["id"] = Bos, ["type_id"] = 1 } },
                    new Dictionary<string, object> { ["Sequence"] = new Dictionary<string, object> { ["id"] = "B", ["type_id"] = 1 } },
                },
                ["special_tokens"] = new Dictionary<string, object>
                {
                    [Bos] = new Dictionary<string, object> { ["id"] = Bos, ["ids"] = new[] { bos }, ["tokens"] = new[] { Bos } },
                },
            },
            ["decoder"] = new Dictionary<string, object> { ["type"] = "ByteLevel", ["add_prefix_space"] = true, ["trim_offsets"] = true, ["use_regex"] = true },
            ["model"] = new Dictionary<string, object?>
            {
                ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = null, ["continuing_subword_prefix"] = null,
                ["end_of_word_suffix"] = null, ["fuse_unk"] = false, ["byte_fallback"] = false, ["ignore_merges"] = true,
                ["vocab"] = vocab.OrderBy(p => p.Value).ToDictionary(p => p.Key, p => p.Value),
                ["merges"] = merges.Select(m => new[] { m.A, m.B }).ToList(),
            },
        };
        return JsonSerializer.Serialize(doc, JsonOptions);
    }

    private static string TokenizerConfigJson() => JsonSerializer.Serialize(new Dictionary<string, object?>
    {
        ["bos_token"] = Bos,
        ["eos_token"] = Eos,
        ["add_bos_token"] = true,
        ["clean_up_tokenization_spaces"] = false,
        ["model_max_length"] = 1_000_000,
        ["tokenizer_class"] = "PreTrainedTokenizerFast",
    }, JsonOptions);

    internal static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };
}
