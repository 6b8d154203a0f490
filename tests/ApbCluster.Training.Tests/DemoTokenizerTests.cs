using ApbCluster.Evaluation.Tasks;
using ApbCluster.Model.Tests.Support;
using ApbCluster.Model.Tokenization;
using ApbCluster.Training.Demo;
using Xunit;

namespace ApbCluster.Training.Tests;

public class DemoTokenizerTests
{
    private static readonly Lazy<DemoTokenizer.Files> Files = new(DemoTokenizer.Build);

    /// <summary>The tokenizer written to a folder and loaded by the normal loader (TextTokenizer.Load).</summary>
    internal static TextTokenizer Load(TempDir dir)
    {
        DemoModelFolder.WriteTokenizer(dir.Path, Files.Value);
        return TextTokenizer.Load(dir.Path);
    }

    [Fact]
    public void LoadsThroughTheNormalLoaderWithItsSpecialTokens()
    {
        using var dir = new TempDir();
        var tok = Load(dir);
        var f = Files.Value;
        Assert.Equal(f.BosId, tok.BosId);
        Assert.Equal([f.EosId], tok.EosIds);
        Assert.Equal(f.Size, tok.VocabSize);
        Assert.InRange(f.Size, 2000, 3000); // bytes + learned words + 702 upper-case pieces + 1100 digit groups + 2 specials
        Assert.True(tok.IsSpecial(f.EosId));
        Assert.Equal(f.BosId, tok.Encode("x", addBos: true)[0]);
        Assert.Equal("Context", tok.Decode(tok.Encode(DemoTokenizer.Bos + "Context", addBos: false), skipSpecial: true));
    }

    [Theory]
    [InlineData(EvalTask.SingleNeedle)]
    [InlineData(EvalTask.MultiKey)]
    [InlineData(EvalTask.MultiValue)]
    [InlineData(EvalTask.VariableTracking)]
    public void EvalSamplesRoundTripAndTokenizeCompactly(EvalTask task)
    {
        using var dir = new TempDir();
        var tok = Load(dir);
        var s = new SampleGenerator(tok).Generate(task, 2048, seed: 3, depth: 0.4);
        var ids = s.DocumentIds.Concat(s.QuestionIds).Select(i => (int)i).ToArray();
        Assert.Equal(s.Document + s.Question, tok.Decode(ids, skipSpecial: true));
        string answer = " " + s.AnswerText;
        Assert.Equal(answer, tok.Decode(tok.Encode(answer, addBos: false), skipSpecial: true));
        // Every filler word is one token: well over 4 characters a token.
        Assert.True((s.Document.Length + s.Question.Length) / (double)ids.Length > 4.0, $"{ids.Length} tokens for {s.Document.Length} chars");
        Assert.InRange(s.TotalTokens, 2048 * 0.99, 2048 * 1.01);
    }

    [Fact]
    public void NumbersNamesAndWordsHaveFixedShapes()
    {
        using var dir = new TempDir();
        var tok = Load(dir);
        string[] Pieces(string text) => tok.Encode(text, addBos: false).Select(i => tok.Decode([i], skipSpecial: false)).ToArray();
        Assert.Equal([" ", "123", "456"], Pieces(" 123456"));
        Assert.Equal([" ", "123", "45"], Pieces(" 12345"));
        Assert.Equal([" Q", "WE", "RT"], Pieces(" QWERT"));
        Assert.Equal([" V", "AR", " Q", "WE", "RT", " =", " V", "AR", " Z", "XC", "VB", "."], Pieces(" VAR QWERT = VAR ZXCVB."));
        Assert.Equal([" The", " harbour", " rests", " beside", " the", " stone", " wall", " at", " dusk", "."],
            Pieces(" The harbour rests beside the stone wall at dusk."));
        Assert.Equal([" crimson", "-falcon"], Pieces(" crimson-falcon"));
        Assert.Equal(["\n\n", "Question", ":"], Pieces("\n\nQuestion:"));
        // Text outside the tasks still encodes (byte fallback).
        Assert.Equal("naïve ✓ ok", tok.Decode(tok.Encode("naïve ✓ ok", addBos: false), skipSpecial: true));
    }

    [Fact]
    public void BuildIsDeterministic()
    {
        var again = DemoTokenizer.Build();
        Assert.Equal(Files.Value.TokenizerJson, again.TokenizerJson);
        Assert.Equal(Files.Value.TokenizerConfigJson, again.TokenizerConfigJson);
    }
}
