using ApbCluster.Admin;

namespace ApbCluster.Cli.Commands;

/// <summary>
/// `apb admin [--endpoint HOST:PORT] [--token T] [--json] [PALETTE COMMAND ARGS...]`: the admin
/// shell. Handled before System.CommandLine because the words after it belong to the node's
/// palettes, which only the node knows. Exit codes: 0 ok, 1 command error, 2 usage, 3 cannot connect.
/// </summary>
internal static class AdminVerb
{
    public static async Task<int> RunAsync(string[] args)
    {
        var words = args.ToList();
        var endpoint = Environment.GetEnvironmentVariable("APB_ADMIN_ENDPOINT") ?? "127.0.0.1:9110";
        var i = words.IndexOf("--endpoint");
        if (i >= 0)
        {
            if (i + 1 >= words.Count)
            {
                await Console.Error.WriteLineAsync("apb admin: --endpoint needs HOST:PORT");
                return AdminExitCodes.Usage;
            }
            endpoint = words[i + 1];
            words.RemoveRange(i, 2);
        }
        // Ctrl+C ends a streaming command (cluster tail, log tail, query trace) cleanly.
        using var stop = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            stop.Cancel();
        };
        return await AdminShell.RunAsync(endpoint, [.. words], Console.Out, Console.In, stop.Token);
    }
}
