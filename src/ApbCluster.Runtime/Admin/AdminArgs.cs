using System.Globalization;

namespace ApbCluster.Runtime.Admin;

/// <summary>Thrown by argument parsing; the server answers with exit code 2 (usage).</summary>
public sealed class AdminUsageException(string message) : Exception(message);

/// <summary>Options of one admin command: "-a VALUE", "-n 10", flags like "--local".</summary>
public sealed class AdminArgs(IReadOnlyList<string> args)
{
    public IReadOnlyList<string> Raw => args;

    public bool HasFlag(string name) => args.Contains(name);

    public string? Option(string name)
    {
        var i = args.ToList().IndexOf(name);
        if (i < 0) return null;
        if (i + 1 >= args.Count || args[i + 1].StartsWith('-'))
            throw new AdminUsageException($"option {name} needs a value");
        return args[i + 1];
    }

    public string RequiredOption(string name, string what) =>
        Option(name) ?? throw new AdminUsageException($"missing {name} {what}");

    public int IntOption(string name, int fallback, int min, int max)
    {
        var value = Option(name);
        if (value is null) return fallback;
        if (!int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n < min || n > max)
            throw new AdminUsageException($"option {name} must be a number from {min} to {max}, not '{value}'");
        return n;
    }
}
