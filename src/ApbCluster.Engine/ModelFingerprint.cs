using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace ApbCluster.Engine;

/// <summary>
/// A short hash of what makes two nodes' models interchangeable in one query: the architecture as parsed from
/// config.json (layers, heads, vocabulary, RoPE, ...) plus the tokenizer's bytes (tokenizer.json, else
/// tokenizer.model) for a folder, or the shape and the seed for a random model. The router refuses a host whose
/// fingerprint differs from its own. Weights are not hashed (gigabytes read at every boot): two folders with the
/// same config and tokenizer but other weights (a fine-tune) look the same.
/// </summary>
public static class ModelFingerprint
{
    private static readonly string[] TokenizerFiles = ["tokenizer.json", "tokenizer.model"];

    /// <summary>"sha256:" and 16 hex digits; "" for no model.</summary>
    public static string Of(ModelSpec? spec)
    {
        if (spec is null) return "";
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(JsonSerializer.SerializeToUtf8Bytes(spec.Config()));
        if (spec.RandomShape is { } shape)
            hash.AppendData(Encoding.UTF8.GetBytes($"\nrandom:{shape}:{spec.Seed}"));
        else if (TokenizerFiles.Select(f => Path.Combine(spec.Directory!, f)).FirstOrDefault(File.Exists) is { } tokenizer)
        {
            hash.AppendData(Encoding.UTF8.GetBytes($"\n{Path.GetFileName(tokenizer)}\n"));
            hash.AppendData(File.ReadAllBytes(tokenizer));
        }
        return "sha256:" + Convert.ToHexString(hash.GetHashAndReset())[..16].ToLowerInvariant();
    }
}
