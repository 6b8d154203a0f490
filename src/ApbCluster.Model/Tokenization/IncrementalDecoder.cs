namespace ApbCluster.Model.Tokenization;

/// <summary>
/// Streams decoded text token by token. A byte-level token can end in the middle of a UTF-8
/// character (decoded as U+FFFD), and sentencepiece drops a leading space when a token is decoded
/// alone; so we decode a short window (previous emitted tokens + new ones) and emit only the
/// text beyond the window's prefix, holding back while it ends in an incomplete character.
/// </summary>
public sealed class IncrementalDecoder(TextTokenizer tokenizer, bool skipSpecial)
{
    private readonly List<int> _ids = [];
    private int _prefixStart, _readStart;

    /// <summary>Adds <paramref name="id"/>; returns the newly completed text (possibly empty).</summary>
    public string Push(int id)
    {
        _ids.Add(id);
        var prefix = Decode(_prefixStart, _readStart);
        var full = Decode(_prefixStart, _ids.Count);
        if (full.Length <= prefix.Length || full.EndsWith('\uFFFD')) return "";
        _prefixStart = _readStart;
        _readStart = _ids.Count;
        return full[prefix.Length..];
    }

    /// <summary>Text still held back (an incomplete character at the end of the stream), decoded as is.</summary>
    public string Flush()
    {
        var prefix = Decode(_prefixStart, _readStart);
        var full = Decode(_prefixStart, _ids.Count);
        _prefixStart = _readStart = _ids.Count;
        return full.Length > prefix.Length ? full[prefix.Length..] : "";
    }

    private string Decode(int from, int to) =>
        from >= to ? "" : tokenizer.Decode(_ids.GetRange(from, to - from), skipSpecial);
}
