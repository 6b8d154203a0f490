namespace ApbCluster.Admin;

/// <summary>
/// The `apb admin` verb: run one command, or open an interactive prompt when none is given.
/// Returns the documented exit codes (<see cref="AdminExitCodes"/>).
/// Options understood here: --json (print the JSON body), --token TOKEN.
/// </summary>
public static class AdminShell
{
    public static Task<int> RunAsync(string endpoint, string[] args, TextWriter output) =>
        RunAsync(endpoint, args, output, Console.In, CancellationToken.None);

    public static async Task<int> RunAsync(string endpoint, string[] args, TextWriter output, TextReader input, CancellationToken ct)
    {
        var words = args.ToList();
        var json = words.Remove("--json");
        var token = TakeOption(words, "--token") ?? Environment.GetEnvironmentVariable("APB_ADMIN_TOKEN");

        AdminClient client;
        try
        {
            client = await AdminClient.ConnectAsync(endpoint, token, ct: ct);
        }
        catch (Exception e) when (e is AdminConnectionException or ArgumentException)
        {
            await output.WriteLineAsync(e.Message);
            return e is ArgumentException ? AdminExitCodes.Usage : AdminExitCodes.CannotConnect;
        }

        await using (client)
        {
            try
            {
                var commands = await client.ListCommandsAsync(ct);
                if (words.Count > 0)
                    return await RunOneAsync(client, commands, words, json, output, ct);
                return await PromptAsync(client, commands, endpoint, json, output, input, ct);
            }
            catch (AdminConnectionException e)
            {
                await output.WriteLineAsync(e.Message);
                return AdminExitCodes.CannotConnect;
            }
        }
    }

    private static async Task<int> RunOneAsync(AdminClient client, IReadOnlyList<AdminCommandInfo> commands, List<string> words, bool json, TextWriter output, CancellationToken ct)
    {
        if (words[0] is "help" or "--help" or "-h")
        {
            await output.WriteAsync(Help(commands));
            return AdminExitCodes.Ok;
        }
        var command = words.Count >= 2 ? commands.FirstOrDefault(c => c.Palette == words[0] && c.Name == words[1]) : null;
        if (command is null)
        {
            await output.WriteLineAsync($"unknown command '{string.Join(' ', words.Take(2))}'; this node offers:");
            await output.WriteAsync(Help(commands));
            return AdminExitCodes.Usage;
        }
        var args = words.Skip(2).ToList();
        var response = command.Streaming
            ? await client.RunStreamAsync(command.FullName, args, line => Print(line, json, output), ct)
            : await client.RunAsync(command.FullName, args, ct);
        await Print(response, json, output);
        return response.ExitCode;
    }

    /// <summary>--json prints the JSON body (one object per line when streaming), else the text.</summary>
    private static async Task Print(AdminResponse response, bool json, TextWriter output)
    {
        if (json) await output.WriteLineAsync(response.Json?.ToJsonString(AdminJson.Options) ?? "null");
        else if (response.Text.Length > 0) await output.WriteLineAsync(response.Text.TrimEnd());
        await output.FlushAsync();
    }

    private static async Task<int> PromptAsync(AdminClient client, IReadOnlyList<AdminCommandInfo> commands, string endpoint, bool json, TextWriter output, TextReader input, CancellationToken ct)
    {
        await output.WriteLineAsync($"connected to {endpoint}; 'help' lists commands, 'exit' quits.");
        var last = AdminExitCodes.Ok;
        while (!ct.IsCancellationRequested)
        {
            await output.WriteAsync("apb> ");
            var line = await input.ReadLineAsync(ct);
            if (line is null || line.Trim() is "exit" or "quit")
                return last;
            var words = Tokenize(line);
            if (words.Count == 0)
                continue;
            var lineJson = words.Remove("--json") || json;
            last = await RunOneAsync(client, commands, words, lineJson, output, ct);
        }
        return last;
    }

    private static string Help(IReadOnlyList<AdminCommandInfo> commands)
    {
        var width = commands.Count == 0 ? 0 : commands.Max(c => c.Usage.Length);
        return string.Concat(commands.Select(c => $"  {c.Usage.PadRight(width)}  {c.Description}\n"));
    }

    private static string? TakeOption(List<string> words, string name)
    {
        var i = words.IndexOf(name);
        if (i < 0 || i + 1 >= words.Count) return null;
        var value = words[i + 1];
        words.RemoveRange(i, 2);
        return value;
    }

    /// <summary>Splits on spaces, keeping "double quoted" words together.</summary>
    public static List<string> Tokenize(string line)
    {
        var words = new List<string>();
        var current = new System.Text.StringBuilder();
        var quoted = false;
        foreach (var ch in line)
        {
            if (ch == '"') { quoted = !quoted; continue; }
            if (char.IsWhiteSpace(ch) && !quoted)
            {
                if (current.Length > 0) { words.Add(current.ToString()); current.Clear(); }
                continue;
            }
            current.Append(ch);
        }
        if (current.Length > 0) words.Add(current.ToString());
        return words;
    }
}
