using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace ApbCluster.Model.Tokenization;

/// <summary>
/// A split regex run by code point, as Hugging Face's (Oniguruma) runs it. .NET's Regex sees a character
/// outside the Basic Multilingual Plane as two surrogate halves that are neither \p{L} nor \p{N}, so
/// "x 𝟏 y" would give " 𝟏" where HF gives " " and "𝟏". The regex runs instead on a stand-in text where
/// each such character is one BMP character of the same Unicode category, and the pieces map back.
/// </summary>
internal sealed class CodePointRegexPreTokenizer : PreTokenizer
{
    private readonly RegexPreTokenizer _inner;

    public CodePointRegexPreTokenizer(Regex regex, IReadOnlyDictionary<string, int>? specialTokens) =>
        _inner = new RegexPreTokenizer(regex, specialTokens);

    public override IEnumerable<(int Offset, int Length)> PreTokenize(ReadOnlySpan<char> text) =>
        PreTokenize(text.ToString());

    public override IEnumerable<(int Offset, int Length)> PreTokenize(string text)
    {
        if (text == null || !HasSurrogatePair(text)) return _inner.PreTokenize(text ?? "");
        var (standIn, starts) = StandIn(text);
        return _inner.PreTokenize(standIn).Select(p => (starts[p.Offset], starts[p.Offset + p.Length] - starts[p.Offset])).ToList();
    }

    private static bool HasSurrogatePair(string text)
    {
        for (int i = 0; i + 1 < text.Length; i++)
            if (char.IsSurrogatePair(text[i], text[i + 1])) return true;
        return false;
    }

    /// <summary>One character per code point, and where each starts in <paramref name="text"/> (plus its end).</summary>
    private static (string StandIn, int[] Starts) StandIn(string text)
    {
        var sb = new StringBuilder(text.Length);
        var starts = new List<int>(text.Length + 1);
        for (int i = 0; i < text.Length;)
        {
            starts.Add(i);
            if (i + 1 < text.Length && char.IsSurrogatePair(text[i], text[i + 1]))
            {
                sb.Append(SameCategory(Rune.GetUnicodeCategory(new Rune(text[i], text[i + 1]))));
                i += 2;
            }
            else sb.Append(text[i++]); // a lone surrogate stays as it is: it cannot reach HF as UTF-8 anyway
        }
        starts.Add(text.Length);
        return (sb.ToString(), starts.ToArray());
    }

    /// <summary>
    /// A BMP character of <paramref name="category"/> that no split pattern names literally (patterns name
    /// ASCII: apostrophes, contraction letters, spaces, line breaks), so only its category decides its match.
    /// </summary>
    internal static char SameCategory(UnicodeCategory category) => category switch
    {
        UnicodeCategory.UppercaseLetter => '\u0394',      // Greek capital delta
        UnicodeCategory.LowercaseLetter => '\u03B4',      // Greek small delta
        UnicodeCategory.TitlecaseLetter => '\u01C5',      // Latin Dž
        UnicodeCategory.ModifierLetter => '\u02B0',       // modifier small h
        UnicodeCategory.OtherLetter => '\u05D0',          // Hebrew alef
        UnicodeCategory.NonSpacingMark => '\u0301',       // combining acute
        UnicodeCategory.SpacingCombiningMark => '\u0903', // Devanagari visarga
        UnicodeCategory.EnclosingMark => '\u20DD',        // combining enclosing circle
        UnicodeCategory.DecimalDigitNumber => '\u0660',   // Arabic-Indic zero
        UnicodeCategory.LetterNumber => '\u2160',         // Roman numeral one
        UnicodeCategory.OtherNumber => '\u00B2',          // superscript two
        UnicodeCategory.SpaceSeparator => '\u2002',       // en space
        UnicodeCategory.LineSeparator => '\u2028',
        UnicodeCategory.ParagraphSeparator => '\u2029',
        UnicodeCategory.Control => '\u0085',
        UnicodeCategory.Format => '\u00AD',               // soft hyphen
        UnicodeCategory.PrivateUse => '\uE000',
        UnicodeCategory.ConnectorPunctuation => '\u203F', // undertie
        UnicodeCategory.DashPunctuation => '\u2010',      // hyphen
        UnicodeCategory.OpenPunctuation => '\u2045',
        UnicodeCategory.ClosePunctuation => '\u2046',
        UnicodeCategory.InitialQuotePunctuation => '\u00AB',
        UnicodeCategory.FinalQuotePunctuation => '\u00BB',
        UnicodeCategory.OtherPunctuation => '\u00A1',     // inverted exclamation mark
        UnicodeCategory.MathSymbol => '\u2211',           // n-ary summation
        UnicodeCategory.CurrencySymbol => '\u20AC',       // euro sign
        UnicodeCategory.ModifierSymbol => '\u02C2',
        UnicodeCategory.OtherSymbol => '\u00A9',          // copyright sign
        _ => '\u0378',                                    // unassigned
    };
}
