using System.Text.Json;

namespace ApbCluster.Model.Tests.Support;

/// <summary>
/// A small byte-level BPE tokenizer.json in HF's format: the 256 GPT-2 byte symbols, a few
/// English merges, and the family's special tokens as added_tokens after them.
/// </summary>
public static class TinyTokenizerJson
{
    public const string Llama3Pattern =
        @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    public static readonly string[] LlamaSpecials =
        ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"];
    public static readonly string[] QwenSpecials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

    /// <summary>Merges in rank order; each one's result becomes a vocabulary entry.</summary>
    public static readonly (string A, string B)[] Merges =
    [
        ("Ġ", "t"), ("h", "e"), ("i", "n"), ("Ġ", "a"), ("e", "r"), ("o", "n"), ("Ġt", "he"), ("Ġ", "w"),
        ("r", "e"), ("l", "l"), ("Ġ", "s"), ("o", "r"), ("Ċ", "Ċ"), ("H", "e"), ("He", "ll"), ("Hell", "o"),
    ];

    /// <summary>GPT-2's reversible byte to printable-character map, which byte-level BPE vocabularies use.</summary>
    public static string[] ByteSymbols()
    {
        var printable = new List<int>();
        for (int b = '!'; b <= '~'; b++) printable.Add(b);
        for (int b = 0xA1; b <= 0xAC; b++) printable.Add(b);
        for (int b = 0xAE; b <= 0xFF; b++) printable.Add(b);
        var symbols = new string[256];
        int extra = 0;
        for (int b = 0; b < 256; b++)
            symbols[b] = ((char)(printable.Contains(b) ? b : 256 + extra++)).ToString();
        return symbols;
    }

    /// <summary>Token ids: bytes 0..255, then merges, then specials. Returns the JSON, the special ids and the tokenizer size.</summary>
    public static (string Json, IReadOnlyDictionary<string, int> Specials, int Size) Build(string[] specials)
    {
        var vocab = new Dictionary<string, int>();
        foreach (var s in ByteSymbols()) vocab[s] = vocab.Count;
        foreach (var (a, b) in Merges) vocab[a + b] = vocab.Count;
        var specialIds = specials.Select((s, i) => (s, id: vocab.Count + i)).ToDictionary(p => p.s, p => p.id);

        var doc = new Dictionary<string, object?>
        {
            ["version"] = "1.0",
            ["added_tokens"] = specialIds.Select(p => new Dictionary<string, object>
            {
                ["id"] = p.Value, ["content"] = p.Key, ["single_word"] = false, ["lstrip"] = false,
                ["rstrip"] = false, ["normalized"] = false, ["special"] = true,
            }).ToList(),
            ["normalizer"] = null,
            ["pre_tokenizer"] = new Dictionary<string, object>
            {
                ["type"] = "Sequence",
                ["pretokenizers"] = new object[]
                {
                    new Dictionary<string, object>
                    {
                        ["type"] = "Split", ["pattern"] = new Dictionary<string, string> { ["Regex"] = Llama3Pattern },
                        ["behavior"] = "Isolated", ["invert"] = false,
                    },
                    new Dictionary<string, object>
                    {
                        ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = false,
                    },
                },
            },
            ["decoder"] = new Dictionary<string, object> { ["type"] = "ByteLevel", ["add_prefix_space"] = true, ["trim_offsets"] = true, ["use_regex"] = true },
            ["model"] = new Dictionary<string, object>
            {
                ["type"] = "BPE", ["dropout"] = null!, ["unk_token"] = null!, ["fuse_unk"] = false, ["byte_fallback"] = false,
                ["ignore_merges"] = true, ["vocab"] = vocab,
                ["merges"] = Merges.Select(m => new[] { m.A, m.B }).ToList(),
            },
        };
        var json = JsonSerializer.Serialize(doc, new JsonSerializerOptions { WriteIndented = true });
        return (json, specialIds, vocab.Count + specials.Length);
    }
}
