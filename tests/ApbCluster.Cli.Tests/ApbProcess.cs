using System.Diagnostics;

namespace ApbCluster.Cli.Tests;

/// <summary>Runs the built `apb` (apb.dll next to the tests) with a hang guard; returns exit code and output.</summary>
internal static class ApbProcess
{
    /// <summary>Only a hang guard, never a speed check: full model runs (the demo, eval, training) take a minute
    /// alone and several on a loaded 2-core machine. Speed is measured by `apb bench`, not here.</summary>
    public static readonly TimeSpan HangGuard = TimeSpan.FromMinutes(10);

    public sealed record Result(int ExitCode, string Stdout, string Stderr);

    public static Result Run(params string[] args) => RunWithInput(null, args);

    public static Result RunWithInput(string? stdin, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = stdin != null,
        };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "apb.dll"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        if (stdin != null) { p.StandardInput.Write(stdin); p.StandardInput.Close(); }
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(HangGuard))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"apb {string.Join(' ', args)} did not finish in {HangGuard.TotalMinutes} minutes: hung?");
        }
        return new Result(p.ExitCode, stdout.Result, stderr.Result);
    }
}
