namespace ApbCluster.Evaluation.Tasks;

/// <summary>
/// Deterministic filler ("haystack") words, keys, numbers and variable names from a seeded RNG. The filler
/// is plain English-like sentences, so every tokenizer splits it into ordinary word tokens; it never
/// contains digits, so numbers in the text are always needles.
/// </summary>
public sealed class FillerText(int seed)
{
    private static readonly string[] Subjects =
        ["The river", "A quiet village", "The old library", "Every autumn", "The market square", "A small boat", "The mountain road",
         "Our garden", "The north wind", "A traveller", "The clock tower", "The baker", "An orange cat", "The harbour", "A gentle rain"];
    private static readonly string[] Verbs =
        ["passes", "waits near", "looks across", "rests beside", "wanders past", "returns to", "shines over", "follows", "leans toward", "sings to"];
    private static readonly string[] Objects =
        ["the green hills", "a row of houses", "the empty field", "the painted bridge", "the long shadows", "a wooden fence",
         "the evening light", "the busy street", "a field of wheat", "the distant sea", "the stone wall", "an open window"];
    private static readonly string[] Tails =
        ["", " in the morning", " after the storm", " without a sound", " as usual", " once more", " for a while", " at dusk"];
    private static readonly string[] KeyAdjectives =
        ["amber", "brisk", "crimson", "dusty", "eager", "frozen", "golden", "hollow", "ivory", "jolly", "lunar", "misty",
         "noble", "olive", "purple", "quiet", "rapid", "silver", "tidal", "velvet", "windy", "young", "zesty", "bright"];
    private static readonly string[] KeyNouns =
        ["falcon", "harbor", "lantern", "meadow", "orchid", "pebble", "quartz", "raven", "saddle", "thistle", "violin",
         "walnut", "beacon", "canyon", "dagger", "ember", "fjord", "glacier", "heron", "island"];

    private readonly Random _rng = new(seed);

    public Random Rng => _rng;

    /// <summary>One filler sentence, e.g. "The river rests beside the stone wall at dusk."</summary>
    public string Sentence() =>
        $"{Pick(Subjects)} {Pick(Verbs)} {Pick(Objects)}{Pick(Tails)}.";

    /// <summary>A key like "crimson-falcon", different from every key in <paramref name="taken"/>.</summary>
    public string Key(ICollection<string> taken)
    {
        while (true)
        {
            var k = $"{Pick(KeyAdjectives)}-{Pick(KeyNouns)}";
            if (!taken.Contains(k)) { taken.Add(k); return k; }
        }
    }

    /// <summary>A number of <paramref name="digits"/> digits (no leading zero), unique within <paramref name="taken"/>.</summary>
    public string Number(ICollection<string> taken, int digits = 6)
    {
        while (true)
        {
            var n = _rng.NextInt64((long)Math.Pow(10, digits - 1), (long)Math.Pow(10, digits)).ToString(System.Globalization.CultureInfo.InvariantCulture);
            if (!taken.Contains(n)) { taken.Add(n); return n; }
        }
    }

    /// <summary>An upper-case variable name of 5 letters (RULER's variable tracking), unique within <paramref name="taken"/>.</summary>
    public string Variable(ICollection<string> taken)
    {
        while (true)
        {
            var v = new string(Enumerable.Range(0, 5).Select(_ => (char)('A' + _rng.Next(26))).ToArray());
            if (!taken.Contains(v)) { taken.Add(v); return v; }
        }
    }

    /// <summary>A depth in [lo, hi).</summary>
    public double Depth(double lo = 0.05, double hi = 0.95) => lo + _rng.NextDouble() * (hi - lo);

    private string Pick(string[] xs) => xs[_rng.Next(xs.Length)];
}
