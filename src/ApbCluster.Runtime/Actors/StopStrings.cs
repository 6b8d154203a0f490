namespace ApbCluster.Runtime.Actors;

/// <summary>
/// How much of a growing answer may be streamed when stop strings are set: everything before the
/// first complete stop string, and otherwise everything but the longest tail that could still grow
/// into one (the "\nUs" of a "\nUser:" stop), so no client ever sees text the final answer cuts.
/// </summary>
public static class StopStrings
{
    /// <summary>Index of the earliest complete stop string in <paramref name="answer"/>, or -1.</summary>
    public static int FirstStop(string answer, IReadOnlyList<string> stops)
    {
        var first = -1;
        foreach (var s in stops)
        {
            if (s.Length == 0) continue;
            var i = answer.IndexOf(s, StringComparison.Ordinal);
            if (i >= 0 && (first < 0 || i < first)) first = i;
        }
        return first;
    }

    /// <summary>Length of the prefix of <paramref name="answer"/> that no stop string can reach into (no complete stop in it assumed).</summary>
    public static int SafeLength(string answer, IReadOnlyList<string> stops)
    {
        var held = 0;
        foreach (var s in stops)
            for (var n = Math.Min(s.Length - 1, answer.Length); n > held; n--)
                if (answer.AsSpan(answer.Length - n).SequenceEqual(s.AsSpan(0, n)))
                {
                    held = n;
                    break;
                }
        return answer.Length - held;
    }
}
