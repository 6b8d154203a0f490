using Microsoft.ML.Tokenizers;

namespace ApbCluster.Model.Tokenization;

/// <summary>
/// The tokenizer of a model folder (tokenizer.json byte-level BPE, or a sentencepiece
/// tokenizer.model), with HF's handling of special tokens written in the text.
/// </summary>
public sealed class TextTokenizer
{
    public const string SentencePieceFileName = "tokenizer.model";

    private readonly Tokenizer _inner;
    private readonly IReadOnlyDictionary<string, int> _vocab;
    private readonly IReadOnlyDictionary<string, int> _added;
    private readonly IReadOnlySet<int> _specialIds;

    /// <summary>The id prepended by <c>Encode(text, addBos: true)</c>; null for models without one (Qwen 2).</summary>
    public int? BosId { get; }
    /// <summary>Every id that ends generation.</summary>
    public IReadOnlyList<int> EosIds { get; }

    /// <summary>Every id that ends generation: the tokenizer's EOS ids and config.json's (Llama 3 instruct
    /// models stop on either &lt;|eot_id|&gt; or &lt;|end_of_text|&gt;).</summary>
    public IReadOnlyList<int> StopIds(Config.ModelConfig config) => EosIds.Concat(config.EosTokenIds).Distinct().ToArray();
    /// <summary>One past the largest token id (the embedding table may be larger).</summary>
    public int VocabSize { get; }
    /// <summary>Added tokens (special or not), text to id; they are matched whole in input text.</summary>
    public IReadOnlyDictionary<string, int> AddedTokens => _added;

    private TextTokenizer(Tokenizer inner, IReadOnlyDictionary<string, int> vocab, IReadOnlyDictionary<string, int> added,
        IReadOnlySet<int> specialIds, int? bos, IReadOnlyList<int> eos)
    {
        _inner = inner;
        _vocab = vocab;
        _added = added;
        _specialIds = specialIds;
        BosId = bos;
        EosIds = eos;
        VocabSize = Math.Max(vocab.Count == 0 ? 0 : vocab.Values.Max() + 1, added.Count == 0 ? 0 : added.Values.Max() + 1);
    }

    /// <summary>Loads tokenizer.json (else tokenizer.model) and the BOS/EOS ids of <paramref name="modelDir"/>.</summary>
    public static TextTokenizer Load(string modelDir)
    {
        var jsonPath = Path.Combine(modelDir, HfTokenizerJson.FileName);
        var spPath = Path.Combine(modelDir, SentencePieceFileName);
        if (File.Exists(jsonPath) && HfTokenizerJson.TryLoad(jsonPath) is { } bpe)
            return Create(modelDir, bpe.Tokenizer, bpe.Vocab, bpe.AddedTokens, bpe.SpecialIds);
        if (File.Exists(spPath)) return LoadSentencePiece(modelDir, spPath);
        if (File.Exists(jsonPath))
            throw new ModelLoadException($"{jsonPath}: key 'pre_tokenizer': not a byte-level BPE tokenizer, and there is no {SentencePieceFileName} in {modelDir}.");
        throw new ModelLoadException($"{modelDir}: no tokenizer found: looked for {HfTokenizerJson.FileName} and {SentencePieceFileName}.");
    }

    private static TextTokenizer LoadSentencePiece(string dir, string path)
    {
        LlamaTokenizer sp;
        try
        {
            using var stream = File.OpenRead(path);
            sp = LlamaTokenizer.Create(stream, addBeginOfSentence: false, addEndOfSentence: false);
        }
        catch (Exception e) when (e is not ModelLoadException)
        {
            throw new ModelLoadException($"{path}: not a readable sentencepiece model: {e.Message}", e);
        }
        var specials = new HashSet<int> { sp.BeginningOfSentenceId, sp.EndOfSentenceId, sp.UnknownId };
        return Create(dir, sp, sp.Vocabulary, new Dictionary<string, int>(), specials);
    }

    private static TextTokenizer Create(string dir, Tokenizer inner, IReadOnlyDictionary<string, int> vocab,
        IReadOnlyDictionary<string, int> added, IReadOnlySet<int> specialIds)
    {
        int? Lookup(string token) => added.TryGetValue(token, out var a) ? a : vocab.TryGetValue(token, out var v) ? v : null;
        var (bos, eos) = SpecialTokenIds.Resolve(dir, Lookup);
        return new TextTokenizer(inner, vocab, added, specialIds, bos, eos);
    }

    /// <summary>The id of an added/special token or vocabulary entry given by its text, or null.</summary>
    public int? TokenId(string token) =>
        _added.TryGetValue(token, out var a) ? a : _vocab.TryGetValue(token, out var v) ? v : null;

    public bool HasToken(string token) => TokenId(token) != null;

    public bool IsSpecial(int id) => _specialIds.Contains(id);

    /// <summary>Token ids of <paramref name="text"/>; special tokens written in the text become their single ids.</summary>
    public IReadOnlyList<int> Encode(string text, bool addBos)
    {
        var ids = _inner.EncodeToIds(text);
        if (!addBos || BosId is not { } bos) return ids;
        var result = new List<int>(ids.Count + 1) { bos };
        result.AddRange(ids);
        return result;
    }

    /// <summary>Text of <paramref name="ids"/>; unknown ids (e.g. padded embedding rows) are dropped.</summary>
    public string Decode(IEnumerable<int> ids, bool skipSpecial)
    {
        var kept = ids.Where(id => id >= 0 && id < VocabSize && !(skipSpecial && _specialIds.Contains(id)));
        return _inner.Decode(kept) ?? "";
    }

    /// <summary>A streaming decoder that returns the text of each new token as soon as it is complete.</summary>
    public IncrementalDecoder CreateIncrementalDecoder(bool skipSpecial = true) => new(this, skipSpecial);
}
