using System.Text.Json;
using System.Text.RegularExpressions;
using ApbCluster.Model.Config;
using Microsoft.ML.Tokenizers;

namespace ApbCluster.Model.Tokenization;

/// <summary>
/// Builds a byte-level BPE tokenizer (Llama 3, Qwen 2, GPT-2 style) from a HF fast-tokenizer
/// <c>tokenizer.json</c>: model.vocab + model.merges, the pre-tokenizer's split regex, and
/// added_tokens as special tokens that are matched whole in the input text.
/// </summary>
internal static class HfTokenizerJson
{
    public const string FileName = "tokenizer.json";

    // GPT-2's split, used when the ByteLevel pre-tokenizer does its own splitting (use_regex: true).
    private const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    public sealed record Result(
        Tokenizer Tokenizer,
        IReadOnlyDictionary<string, int> Vocab,
        IReadOnlyDictionary<string, int> AddedTokens,
        IReadOnlySet<int> SpecialIds);

    /// <summary>Null when the file is not a byte-level BPE tokenizer (the caller may try tokenizer.model).</summary>
    public static Result? TryLoad(string path)
    {
        using var json = JsonFile.Read(path);
        if (json.Get("model") is not { ValueKind: JsonValueKind.Object } model) throw json.Missing("model");
        var type = model.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null;
        if (type != "BPE")
            throw json.Invalid("model.type", $"'{type}' is not supported; only byte-level 'BPE' is.");

        var pattern = FindSplitPattern(json, out bool byteLevel);
        if (!byteLevel) return null;

        var (added, specialIds) = ReadAddedTokens(json);
        var vocab = ReadVocab(json, model, added);
        var merges = ReadMerges(json, model);

        Regex regex;
        try { regex = new Regex(pattern, RegexOptions.Compiled); }
        catch (ArgumentException e) { throw json.Invalid("pre_tokenizer", $"split regex does not compile in .NET: {e.Message}"); }

        // ignore_merges (Llama 3): a pre-token found whole in the vocabulary is one token, as in
        // tiktoken, which Llama 3's ids are the ranks of. TiktokenTokenizer does exactly that.
        if (model.TryGetProperty("ignore_merges", out var im) && im.ValueKind == JsonValueKind.True)
            return new Result(TiktokenFromVocab(path, vocab, regex, added), vocab, added, specialIds);

        var options = new BpeOptions(vocab)
        {
            Merges = merges,
            SpecialTokens = added.Count > 0 ? added : null,
            ByteLevel = true,
            PreTokenizer = new CodePointRegexPreTokenizer(regex, added.Count > 0 ? added : null),
        };
        try
        {
            return new Result(BpeTokenizer.Create(options), vocab, added, specialIds);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or FormatException)
        {
            throw new ModelLoadException($"{path}: cannot build the BPE tokenizer: {e.Message}", e);
        }
    }

    /// <summary>Writes the byte-level vocabulary as tiktoken's "base64(bytes) rank" lines and loads that.</summary>
    private static Tokenizer TiktokenFromVocab(string path, Dictionary<string, int> vocab, Regex regex, Dictionary<string, int> added)
    {
        var byteOf = ByteLevelDecoding();
        var sb = new System.Text.StringBuilder();
        var bytes = new List<byte>();
        foreach (var (token, id) in vocab.OrderBy(p => p.Value))
        {
            bytes.Clear();
            foreach (var ch in token)
            {
                if (!byteOf.TryGetValue(ch, out var b))
                    throw new ModelLoadException($"{path}: key 'model.vocab': token '{token}' is not byte-level (character U+{(int)ch:X4}).");
                bytes.Add(b);
            }
            sb.Append(Convert.ToBase64String(bytes.ToArray())).Append(' ').Append(id).Append('\n');
        }
        using var stream = new MemoryStream(System.Text.Encoding.UTF8.GetBytes(sb.ToString()));
        try
        {
            var special = added.Count > 0 ? added : null;
            return TiktokenTokenizer.Create(stream, new CodePointRegexPreTokenizer(regex, special), null, special);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or FormatException)
        {
            throw new ModelLoadException($"{path}: cannot build the tokenizer: {e.Message}", e);
        }
    }

    /// <summary>GPT-2's printable character for each byte, inverted.</summary>
    private static Dictionary<char, byte> ByteLevelDecoding()
    {
        var map = new Dictionary<char, byte>();
        int extra = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            map[(char)(printable ? b : 256 + extra++)] = (byte)b;
        }
        return map;
    }

    /// <summary>The split regex of the pre-tokenizer; <paramref name="byteLevel"/> tells whether it is byte-level at all.</summary>
    private static string FindSplitPattern(JsonFile json, out bool byteLevel)
    {
        string? split = null;
        bool isByteLevel = false, byteLevelRegex = false;
        void Visit(JsonElement p)
        {
            if (p.ValueKind != JsonValueKind.Object || !p.TryGetProperty("type", out var ty)) return;
            switch (ty.GetString())
            {
                case "Sequence" when p.TryGetProperty("pretokenizers", out var list) && list.ValueKind == JsonValueKind.Array:
                    foreach (var item in list.EnumerateArray()) Visit(item);
                    break;
                case "Split" when split == null && p.TryGetProperty("pattern", out var pat)
                                  && pat.ValueKind == JsonValueKind.Object && pat.TryGetProperty("Regex", out var rx):
                    split = rx.GetString();
                    break;
                case "ByteLevel":
                    isByteLevel = true;
                    byteLevelRegex = !p.TryGetProperty("use_regex", out var ur) || ur.ValueKind != JsonValueKind.False;
                    break;
            }
        }
        if (json.Get("pre_tokenizer") is { } pre) Visit(pre);
        byteLevel = isByteLevel;
        if (split != null) return split;
        if (byteLevelRegex) return Gpt2Pattern;
        if (byteLevel) throw json.Invalid("pre_tokenizer", "ByteLevel without a split regex is not supported.");
        return "";
    }

    private static (Dictionary<string, int> Added, HashSet<int> SpecialIds) ReadAddedTokens(JsonFile json)
    {
        var added = new Dictionary<string, int>(StringComparer.Ordinal);
        var special = new HashSet<int>();
        if (json.Get("added_tokens") is not { ValueKind: JsonValueKind.Array } list) return (added, special);
        foreach (var tok in list.EnumerateArray())
        {
            if (!tok.TryGetProperty("content", out var c) || c.ValueKind != JsonValueKind.String || !tok.TryGetProperty("id", out var idEl))
                throw json.Invalid("added_tokens", $"entry {Short(tok)} lacks 'id' or 'content'.");
            int id = json.AsInt(idEl, "added_tokens.id");
            added[c.GetString()!] = id;
            // HF matches every added token whole in the text; only "special" ones are skipped on decode.
            if (!tok.TryGetProperty("special", out var s) || s.ValueKind != JsonValueKind.False) special.Add(id);
        }
        return (added, special);
    }

    private static Dictionary<string, int> ReadVocab(JsonFile json, JsonElement model, Dictionary<string, int> added)
    {
        if (!model.TryGetProperty("vocab", out var v) || v.ValueKind != JsonValueKind.Object) throw json.Missing("model.vocab");
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var p in v.EnumerateObject())
            if (!added.ContainsKey(p.Name)) // added tokens are handled as special tokens, not BPE pieces
                vocab[p.Name] = json.AsInt(p.Value, "model.vocab." + p.Name);
        return vocab;
    }

    private static List<string> ReadMerges(JsonFile json, JsonElement model)
    {
        var merges = new List<string>();
        if (!model.TryGetProperty("merges", out var m) || m.ValueKind != JsonValueKind.Array) throw json.Missing("model.merges");
        foreach (var e in m.EnumerateArray())
        {
            // Older files write "a b"; newer ones ["a", "b"].
            if (e.ValueKind == JsonValueKind.String) merges.Add(e.GetString()!);
            else if (e.ValueKind == JsonValueKind.Array && e.GetArrayLength() == 2) merges.Add(e[0].GetString() + " " + e[1].GetString());
            else throw json.Invalid("model.merges", $"entry {Short(e)} is neither \"a b\" nor [\"a\", \"b\"].");
        }
        return merges;
    }

    private static string Short(JsonElement e)
    {
        var s = e.GetRawText();
        return s.Length <= 60 ? s : s[..60] + "...";
    }
}
