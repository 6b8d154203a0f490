using ApbCluster.Admin;

namespace ApbCluster.Runtime.Admin;

public delegate Task<AdminResponse> AdminHandler(AdminArgs args, CancellationToken ct);

/// <summary>The palettes a node offers; palettes register their commands at boot.</summary>
public sealed class AdminCommandRegistry
{
    private readonly Dictionary<string, (AdminCommandInfo Info, AdminHandler Handler)> _commands = new(StringComparer.Ordinal);

    public IReadOnlyList<AdminCommandInfo> Commands => _commands.Values.Select(c => c.Info).OrderBy(c => c.FullName).ToList();

    public AdminCommandRegistry Add(string palette, string name, string usage, string description, AdminHandler handler)
    {
        var info = new AdminCommandInfo(palette, name, usage, description);
        _commands[info.FullName] = (info, handler);
        return this;
    }

    public async Task<AdminResponse> RunAsync(string cmd, IReadOnlyList<string> args, CancellationToken ct)
    {
        if (!_commands.TryGetValue(cmd, out var command))
            return AdminResponse.Usage($"unknown command '{cmd}'");
        try
        {
            return await command.Handler(new AdminArgs(args), ct);
        }
        catch (AdminUsageException e)
        {
            return AdminResponse.Usage($"{e.Message}\nusage: {command.Info.Usage}");
        }
        catch (Exception e)
        {
            return AdminResponse.Error($"{cmd} failed: {e.Message}");
        }
    }
}
