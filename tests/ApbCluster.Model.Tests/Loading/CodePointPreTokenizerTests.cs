using System.Globalization;
using System.Text.RegularExpressions;
using ApbCluster.Model.Tokenization;
using Xunit;

namespace ApbCluster.Model.Tests.Loading;

public class CodePointPreTokenizerTests
{
    // Llama 3's split (tokenizer.json pre_tokenizer.pretokenizers[0].pattern.Regex).
    private const string Llama3 = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    private static string[] Pieces(string text) =>
        new CodePointRegexPreTokenizer(new Regex(Llama3), null).PreTokenize(text).Select(p => text.Substring(p.Offset, p.Length)).ToArray();

    [Theory]
    [InlineData("x 𝟏 y", new[] { "x", " ", "𝟏", " y" })]           // a digit outside the BMP is \p{N}: the space stays apart
    [InlineData("𝟙𝟚𝟛𝟜𝟝", new[] { "𝟙𝟚𝟛", "𝟜𝟝" })]                  // \p{N}{1,3} counts code points, not UTF-16 units
    [InlineData("a 𝐀𝐁c", new[] { "a", " 𝐀𝐁c" })]                   // letters outside the BMP join the BMP letters
    [InlineData("𞤀𞤁 😀!", new[] { "𞤀𞤁", " 😀!" })]                 // Adlam letters; an emoji is a symbol
    [InlineData("plain ascii, 123", new[] { "plain", " ascii", ",", " ", "123" })]
    public void SplitsByCodePoint(string text, string[] expected) => Assert.Equal(expected, Pieces(text));

    [Fact]
    public void StandInsHaveTheirCategory()
    {
        foreach (var category in Enum.GetValues<UnicodeCategory>().Where(c => c is not (UnicodeCategory.Surrogate or UnicodeCategory.OtherNotAssigned)))
            Assert.Equal(category, char.GetUnicodeCategory(CodePointRegexPreTokenizer.SameCategory(category)));
    }
}
