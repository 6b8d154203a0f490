using ApbCluster.Model.Tests.Support;
using ApbCluster.Model.Tokenization;
using Xunit;

namespace ApbCluster.Model.Tests.Loading;

public class TokenizerTests
{
    private static TextTokenizer Load(TempDir tmp, TinyCheckpointOptions opts)
    {
        TinyCheckpoint.Create(opts with { Directory = tmp.Path });
        return TextTokenizer.Load(tmp.Path);
    }

    [Theory]
    [InlineData("Hello world, the other one.", true)]
    [InlineData("  leading spaces\n\nand\ttabs  ", true)]
    [InlineData("Ünïcödé: 日本語 😀 ok", true)]
    [InlineData("", true)]
    [InlineData("Hello world, the other one.", false)]
    [InlineData("  leading spaces\n\nand\ttabs  ", false)]
    [InlineData("Ünïcödé: 日本語 😀 ok", false)]
    public void RoundTrips(string text, bool ignoreMerges)
    {
        using var tmp = new TempDir();
        var tok = Load(tmp, TinyCheckpointOptions.Llama with { IgnoreMerges = ignoreMerges });
        var ids = tok.Encode(text, addBos: false);
        Assert.Equal(text, tok.Decode(ids, skipSpecial: false));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void MergesApply(bool ignoreMerges)
    {
        using var tmp = new TempDir();
        var tok = Load(tmp, TinyCheckpointOptions.Llama with { IgnoreMerges = ignoreMerges });
        var ids = tok.Encode("Hello the", addBos: false);
        Assert.Equal([tok.TokenId("Hello")!.Value, tok.TokenId("Ġthe")!.Value], ids);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void SpecialTokensInTextBecomeSingleIds(bool ignoreMerges)
    {
        using var tmp = new TempDir();
        var tok = Load(tmp, TinyCheckpointOptions.Llama with { IgnoreMerges = ignoreMerges });
        int bos = tok.TokenId("<|begin_of_text|>")!.Value, eot = tok.TokenId("<|eot_id|>")!.Value;
        var ids = tok.Encode("<|begin_of_text|>Hello<|eot_id|>", addBos: false);
        Assert.Equal([bos, tok.TokenId("Hello")!.Value, eot], ids);

        var withBos = tok.Encode("Hello", addBos: true);
        Assert.Equal([bos, tok.TokenId("Hello")!.Value], withBos);

        Assert.Equal("<|begin_of_text|>Hello<|eot_id|>", tok.Decode(ids, skipSpecial: false));
        Assert.Equal("Hello", tok.Decode(ids, skipSpecial: true));
    }

    [Fact]
    public void QwenHasNoBosAndAddsNone()
    {
        using var tmp = new TempDir();
        var tok = Load(tmp, TinyCheckpointOptions.Qwen2);
        Assert.Null(tok.BosId);
        var ids = tok.Encode("<|im_start|>user\nHi<|im_end|>", addBos: true);
        Assert.Equal(tok.TokenId("<|im_start|>"), ids[0]);
        Assert.Equal(tok.TokenId("<|im_end|>"), ids[^1]);
        Assert.Equal([tok.TokenId("<|im_end|>")!.Value, tok.TokenId("<|endoftext|>")!.Value], tok.EosIds);
    }

    [Fact]
    public void DecodeDropsIdsBeyondTheTokenizer()
    {
        using var tmp = new TempDir();
        var tok = Load(tmp, TinyCheckpointOptions.Llama);
        var ids = tok.Encode("Hi", addBos: false).Append(tok.VocabSize + 3); // a padded embedding row
        Assert.Equal("Hi", tok.Decode(ids, skipSpecial: false));
    }

    [Fact]
    public void IncrementalDecodeNeverSplitsMultibyteCharacters()
    {
        using var tmp = new TempDir();
        var tok = Load(tmp, TinyCheckpointOptions.Llama);
        const string text = "Hello wörld 日本 😀!<|eot_id|>";
        var ids = tok.Encode(text, addBos: false);
        var decoder = tok.CreateIncrementalDecoder(skipSpecial: true);
        var pieces = ids.Select(decoder.Push).ToList();
        pieces.Add(decoder.Flush());

        Assert.Equal("Hello wörld 日本 😀!", string.Concat(pieces));
        Assert.All(pieces, p => Assert.DoesNotContain('\uFFFD', p));
        // 😀 is 4 byte tokens here: the first three yield nothing, the fourth the whole emoji.
        Assert.Contains("😀", pieces);
    }
}
