namespace ApbCluster.Model.Generation;

/// <summary>
/// Turns a growing token list into streamed text pieces. Decodes the whole generated list each step
/// (token pieces do not concatenate reliably: merged spaces, multi-token characters), holds back a
/// trailing U+FFFD (an unfinished UTF-8 character) and any tail that could start a stop string,
/// and cuts the text before the first stop string.
/// </summary>
public sealed class TextTracker(Func<IReadOnlyList<int>, string>? decode, IReadOnlyList<string> stopStrings)
{
    private readonly List<int> _ids = [];
    private readonly int _longestStop = stopStrings.Count == 0 ? 0 : stopStrings.Max(s => s.Length);
    private int _emitted;

    /// <summary>The generated text so far (cut before a stop string once one is seen).</summary>
    public string Text { get; private set; } = "";

    /// <summary>Adds a token (null for one without text, e.g. EOS); returns the new piece and whether a stop string appeared.
    /// <paramref name="final"/> flushes everything held back.</summary>
    public (string Piece, bool Stopped) Add(int? token, bool final)
    {
        if (decode is null) return ("", false);
        if (token is int t) _ids.Add(t);
        string full = decode(_ids);
        int from = Math.Min(full.Length, Math.Max(0, _emitted - _longestStop));
        int cut = -1;
        foreach (var stop in stopStrings)
        {
            if (stop.Length == 0) continue;
            int at = full.IndexOf(stop, from, StringComparison.Ordinal);
            if (at >= 0 && (cut < 0 || at < cut)) cut = at;
        }
        if (cut >= 0)
        {
            Text = full[..cut];
            return (Emit(cut), true);
        }
        Text = full;
        if (final) return (Emit(full.Length), false);
        int safe = full.Length;
        while (safe > _emitted && full[safe - 1] == '\uFFFD') safe--;
        return (Emit(safe - LongestStopPrefixAtEnd(full, safe)), false);
    }

    private string Emit(int upTo)
    {
        if (upTo <= _emitted) return "";
        string piece = Text[_emitted..upTo];
        _emitted = upTo;
        return piece;
    }

    /// <summary>Length of the longest tail of full[..end] that is a proper prefix of a stop string.</summary>
    private int LongestStopPrefixAtEnd(string full, int end)
    {
        int best = 0;
        foreach (var stop in stopStrings)
            for (int len = Math.Min(stop.Length - 1, end); len > best; len--)
                if (string.CompareOrdinal(full, end - len, stop, 0, len) == 0) { best = len; break; }
        return best;
    }
}
