using System.Diagnostics;
using System.Text.Json;

namespace ApbCluster.Runtime.Tests.Cluster;

/// <summary>`apb ask --cluster host:port` against a real loopback cluster (a router and 2 gpu-host node
/// processes, random:tiny:7): the answer streams back and --json carries the final result.</summary>
[Collection(LoopbackClusterCollection.Name)]
public sealed class CliAskClusterTests
{
    [Fact]
    public async Task Apb_ask_submits_to_a_running_cluster_and_prints_the_answer()
    {
        var ct = TestContext.Current.CancellationToken;
        using var cluster = await LoopbackCluster.StartAsync(hostNodes: 2, ct: ct);
        var context = Path.GetTempFileName();
        try
        {
            await File.WriteAllTextAsync(context, string.Join(' ', Enumerable.Repeat("the cat sat on the mat and looked at the hat.", 30)), ct);
            var (code, stdout, stderr) = await RunApbAsync(ct, "ask", "--cluster", cluster.RouterContact, "--context", context,
                "--question", "Where did the cat sit?", "--mode", "apb", "-n", "4", "--json");
            Assert.True(code == 0, $"exit {code}\n{stderr}\n{cluster.Outputs()}");
            using var doc = JsonDocument.Parse(stdout);
            Assert.Equal(4, doc.RootElement.GetProperty("generated_tokens").GetInt32());
            Assert.True(doc.RootElement.GetProperty("prompt_tokens").GetInt32() > 300);
            Assert.Contains("accepted: hosts", stderr);
            Assert.Contains("prefill [", stderr);

            // CritiPrefill per query (SubmitQuery and RunShard across processes): beyond its threshold it answers as full
            // attention; pruning every host's local block it still answers.
            string[] ask = ["ask", "--cluster", cluster.RouterContact, "--context", context, "--question", "Where did the cat sit?", "--mode", "apb", "-n", "4", "--json"];
            var beyond = await RunApbAsync(ct, [.. ask, "--prefill-attention", "critiprefill", "--criti-threshold", "100000"]);
            Assert.True(beyond.Code == 0, $"exit {beyond.Code}\n{beyond.Stderr}\n{cluster.Outputs()}");
            Assert.Equal(doc.RootElement.GetProperty("token_ids").GetRawText(), JsonDocument.Parse(beyond.Stdout).RootElement.GetProperty("token_ids").GetRawText());
            var pruned = await RunApbAsync(ct, [.. ask, "--prefill-attention", "critiprefill", "--criti-segment", "16", "--criti-block", "4", "--criti-budget", "16", "--criti-threshold", "0"]);
            Assert.True(pruned.Code == 0, $"exit {pruned.Code}\n{pruned.Stderr}\n{cluster.Outputs()}");
            Assert.Equal(4, JsonDocument.Parse(pruned.Stdout).RootElement.GetProperty("generated_tokens").GetInt32());

            // A bad request is refused by the router with a reason, and the CLI exits 1.
            var bad = await RunApbAsync(ct, "ask", "--cluster", cluster.RouterContact, "--context", context,
                "--question", "q", "--mode", "apb", "--anchor", "100000", "--passing", "4");
            Assert.Equal(1, bad.Code);
            Assert.Contains("anchor", bad.Stderr);
        }
        finally { File.Delete(context); }
    }

    /// <summary>apb.dll in the CLI project's own output (built through the project reference). The copy next to
    /// these tests lacks assemblies that the test host takes from the ASP.NET framework instead.</summary>
    private static string ApbDll()
    {
        var here = new DirectoryInfo(AppContext.BaseDirectory); // tests/ApbCluster.Runtime.Tests/bin/<Configuration>/net10.0/
        string configuration = here.Parent!.Name, framework = here.Name;
        var root = here.Parent.Parent!.Parent!.Parent!.Parent!.FullName;
        var dll = Path.Combine(root, "src", "ApbCluster.Cli", "bin", configuration, framework, "apb.dll");
        Assert.True(File.Exists(dll), $"the apb CLI was not built at {dll}");
        return dll;
    }

    private static async Task<(int Code, string Stdout, string Stderr)> RunApbAsync(CancellationToken ct, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(ApbDll());
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync(ct);
        var stderr = p.StandardError.ReadToEndAsync(ct);
        using var bound = CancellationTokenSource.CreateLinkedTokenSource(ct);
        bound.CancelAfter(TimeSpan.FromSeconds(60));
        try { await p.WaitForExitAsync(bound.Token); }
        catch (OperationCanceledException) { p.Kill(entireProcessTree: true); throw new TimeoutException("apb ask did not finish in 60 s"); }
        return (p.ExitCode, await stdout, await stderr);
    }
}
