using System.Text.Json;
using ApbCluster.Model.Config;

namespace ApbCluster.Model.Tokenization;

/// <summary>
/// Finds the BOS and EOS ids of a model folder the way HF does: tokenizer_config.json's
/// bos_token/eos_token first, then generation_config.json, then config.json.
/// </summary>
internal static class SpecialTokenIds
{
    public const string TokenizerConfig = "tokenizer_config.json";
    public const string GenerationConfig = "generation_config.json";

    public static (int? Bos, IReadOnlyList<int> Eos) Resolve(string dir, Func<string, int?> tokenToId)
    {
        using var tok = ReadIfPresent(Path.Combine(dir, TokenizerConfig));
        using var gen = ReadIfPresent(Path.Combine(dir, GenerationConfig));
        using var cfg = ReadIfPresent(Path.Combine(dir, ModelConfig.FileName));

        int? bos;
        // tokenizer_config.json saying "bos_token": null (Qwen 2) means no BOS, whatever config.json says.
        if (tok != null && tok.Root.TryGetProperty("bos_token", out _))
            bos = TokenId(tok, "bos_token", tokenToId);
        else
            bos = gen?.OptionalInt("bos_token_id") ?? cfg?.OptionalInt("bos_token_id");

        var eos = new List<int>();
        if (gen != null) eos.AddRange(gen.IntOrIntList("eos_token_id"));
        if (cfg != null) eos.AddRange(cfg.IntOrIntList("eos_token_id"));
        if (tok != null && TokenId(tok, "eos_token", tokenToId) is { } e) eos.Add(e);
        return (bos, eos.Distinct().ToArray());
    }

    private static JsonFile? ReadIfPresent(string path) => File.Exists(path) ? JsonFile.Read(path) : null;

    /// <summary>A token given as "text" or {"content": "text"}, mapped to its id.</summary>
    private static int? TokenId(JsonFile json, string key, Func<string, int?> tokenToId)
    {
        if (json.Get(key) is not { } v) return null;
        string? text = v.ValueKind switch
        {
            JsonValueKind.String => v.GetString(),
            JsonValueKind.Object when v.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String => c.GetString(),
            _ => throw json.WrongType(key, "a token string or {\"content\": ...}", v),
        };
        if (text == null) return null;
        return tokenToId(text) ?? throw json.Invalid(key, $"token '{text}' is not in the tokenizer's vocabulary.");
    }
}
