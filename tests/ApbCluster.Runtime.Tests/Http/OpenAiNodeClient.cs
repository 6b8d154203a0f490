using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace ApbCluster.Runtime.Tests.Http;

/// <summary>
/// The official `openai` npm client (pinned in openai-client/package-lock.json) run by Node against
/// our server: what a real OpenAI user's code sees, parsing included. Installs its one package with
/// `npm ci` on first use (the npm registry is reachable wherever CI runs); skips when Node is absent.
/// </summary>
public static class OpenAiNodeClient
{
    private static readonly string Dir = Path.Combine(SourceDir(), "openai-client");
    private static readonly Lazy<Task<string?>> Installed = new(InstallAsync);

    /// <summary>One client call (see client.mjs); an API error comes back as {"error": {...}}.</summary>
    public static async Task<JsonNode> RunAsync(Uri baseUrl, object plan)
    {
        if (await Installed.Value is { } why) Assert.Skip(why);
        var (code, stdout, stderr) = await Exec("node", ["client.mjs", new Uri(baseUrl, "/v1").ToString(), JsonSerializer.Serialize(plan)]);
        Assert.True(code == 0, $"openai client failed ({code}): {stderr}");
        return JsonNode.Parse(stdout)!;
    }

    private static async Task<string?> InstallAsync()
    {
        if (!Directory.Exists(Dir)) return $"the openai client script is not here ({Dir}): run from a source checkout";
        try
        {
            await Exec("node", ["--version"]);
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return "Node.js is not installed (apt-get install nodejs npm): the official openai client runs on it";
        }
        if (File.Exists(Path.Combine(Dir, "node_modules", "openai", "package.json"))) return null;
        var (code, _, stderr) = await Exec("npm", ["ci", "--no-audit", "--no-fund"]);
        Assert.True(code == 0, $"npm ci for the openai client failed ({code}): {stderr}");
        return null;
    }

    private static async Task<(int Code, string Stdout, string Stderr)> Exec(string file, string[] args)
    {
        var psi = new ProcessStartInfo(file) { WorkingDirectory = Dir, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var bound = new CancellationTokenSource(TimeSpan.FromMinutes(3)); // a hang guard: npm ci over a slow registry
        try
        {
            await p.WaitForExitAsync(bound.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish in 3 minutes");
        }
        return (p.ExitCode, await stdout, await stderr);
    }

    private static string SourceDir([CallerFilePath] string path = "") => Path.GetDirectoryName(path)!;
}
