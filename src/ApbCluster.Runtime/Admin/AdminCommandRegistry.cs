using ApbCluster.Admin;

namespace ApbCluster.Runtime.Admin;

public delegate Task<AdminResponse> AdminHandler(AdminArgs args, CancellationToken ct);

/// <summary>
/// A streaming command: calls <c>emit</c> for each line (the server sends them marked "more")
/// and returns the final response when done, when its count is reached, or when <c>ct</c>
/// fires because the client stopped or went away.
/// </summary>
public delegate Task<AdminResponse> AdminStreamHandler(AdminArgs args, Func<AdminResponse, Task> emit, CancellationToken ct);

/// <summary>The palettes a node offers; palettes register their commands at boot.</summary>
public sealed class AdminCommandRegistry
{
    private readonly Dictionary<string, (AdminCommandInfo Info, AdminStreamHandler Handler)> _commands = new(StringComparer.Ordinal);

    public IReadOnlyList<AdminCommandInfo> Commands => _commands.Values.Select(c => c.Info).OrderBy(c => c.FullName).ToList();

    public bool IsStreaming(string cmd) => _commands.TryGetValue(cmd, out var c) && c.Info.Streaming;

    public AdminCommandRegistry Add(string palette, string name, string usage, string description, AdminHandler handler)
    {
        var info = new AdminCommandInfo(palette, name, usage, description);
        _commands[info.FullName] = (info, (args, _, ct) => handler(args, ct));
        return this;
    }

    public AdminCommandRegistry AddStream(string palette, string name, string usage, string description, AdminStreamHandler handler)
    {
        var info = new AdminCommandInfo(palette, name, usage, description, Streaming: true);
        _commands[info.FullName] = (info, handler);
        return this;
    }

    public Task<AdminResponse> RunAsync(string cmd, IReadOnlyList<string> args, CancellationToken ct) =>
        RunAsync(cmd, args, _ => Task.CompletedTask, ct);

    public async Task<AdminResponse> RunAsync(string cmd, IReadOnlyList<string> args, Func<AdminResponse, Task> emit, CancellationToken ct)
    {
        if (!_commands.TryGetValue(cmd, out var command))
            return AdminResponse.Usage($"unknown command '{cmd}'");
        try
        {
            return await command.Handler(new AdminArgs(args), emit, ct);
        }
        catch (AdminUsageException e)
        {
            return AdminResponse.Usage($"{e.Message}\nusage: {command.Info.Usage}");
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested && command.Info.Streaming)
        {
            return AdminResponse.Ok("stream stopped");
        }
        catch (Exception e)
        {
            return AdminResponse.Error($"{cmd} failed: {e.Message}");
        }
    }
}
