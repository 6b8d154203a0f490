using System.CommandLine;

namespace ApbCluster.Cli.Commands;

/// <summary>
/// System.CommandLine's parse errors (an unknown verb or option, a value of the wrong type, a missing
/// required option) as usage errors: the errors on stderr, one line each, a pointer to --help, exit
/// code 2. Its default prints the whole help on stdout and exits 1, which reads like an answer.
/// </summary>
internal static partial class ParseErrors
{
    public static int Report(ParseResult parsed)
    {
        // An unknown verb also leaves "no command given": the first says it better.
        var unknownVerb = parsed.Errors.Any(e => e.Message.StartsWith("Unrecognized command", StringComparison.Ordinal));
        foreach (var error in parsed.Errors)
            if (!(unknownVerb && error.Message.StartsWith("Required command", StringComparison.Ordinal)))
                Console.Error.WriteLine("error: " + InUserWords(error.Message));
        var command = string.Join(' ', Path(parsed.CommandResult.Command).Reverse().Skip(1).Prepend("apb"));
        Console.Error.WriteLine($"run '{command} --help' for the options");
        return CliRun.Usage;
    }

    /// <summary>"as expected type 'System.Int32'" means nothing to a user: say what the value should look like.</summary>
    private static string InUserWords(string message) => TypeName().Replace(message, m => m.Groups[1].Value switch
    {
        "Int32" or "Int64" => "as a whole number",
        "Single" or "Double" => "as a number",
        "Boolean" => "as true or false",
        var t => $"as a {t.ToLowerInvariant()}",
    });

    [System.Text.RegularExpressions.GeneratedRegex(@"as expected type 'System\.(\w+)'")]
    private static partial System.Text.RegularExpressions.Regex TypeName();

    private static IEnumerable<string> Path(Command command)
    {
        for (Command? c = command; c is not null; c = c.Parents.OfType<Command>().FirstOrDefault())
            yield return c.Name;
    }
}
