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

            // ShadowKV per query (SubmitQuery and RunShard across processes): uncapped rank and budget attend every key
            // and answer as the full store; the reference's parameters still answer.
            var lossless = await RunApbAsync(ct, [.. ask, "--kv", "shadowkv", "--shadow-rank", "100000", "--shadow-budget", "100000", "--shadow-outliers", "2", "--shadow-local", "1"]);
            Assert.True(lossless.Code == 0, $"exit {lossless.Code}\n{lossless.Stderr}\n{cluster.Outputs()}");
            Assert.Equal(doc.RootElement.GetProperty("token_ids").GetRawText(), JsonDocument.Parse(lossless.Stdout).RootElement.GetProperty("token_ids").GetRawText());
            var shadow = await RunApbAsync(ct, [.. ask, "--kv", "shadowkv", "--shadow-budget", "16", "--shadow-outliers", "1", "--shadow-values", "host"]);
            Assert.True(shadow.Code == 0, $"exit {shadow.Code}\n{shadow.Stderr}\n{cluster.Outputs()}");
            Assert.Equal(4, JsonDocument.Parse(shadow.Stdout).RootElement.GetProperty("generated_tokens").GetInt32());

            // A bad request is refused by the router with a reason, and the CLI exits 1.
            var bad = await RunApbAsync(ct, "ask", "--cluster", cluster.RouterContact, "--context", context,
                "--question", "q", "--mode", "apb", "--anchor", "100000", "--passing", "4");
            Assert.Equal(1, bad.Code);
            Assert.Contains("anchor", bad.Stderr);

            // A healthy run logs no alarms: neither the singleton proxy's warning at start nor the transport's at each
            // client exit (the clients above have all exited; the nodes saw them leave).
            string[] alarms = ["failed to find an associated singleton", "Unable to REMOVE channel"];
            foreach (var output in new[] { stdout, stderr, beyond.Stdout, beyond.Stderr, pruned.Stdout, pruned.Stderr, bad.Stdout, bad.Stderr, cluster.Router.Output }.Concat(cluster.HostOutputs()))
                foreach (var alarm in alarms)
                    Assert.False(output.Contains(alarm, StringComparison.Ordinal), $"'{alarm}' logged on a healthy run:\n{cluster.Outputs()}");
        }
        finally { File.Delete(context); }
    }

    /// <summary>
    /// The cluster serves the query `apb ask` runs in process: the same prompt ids (one prompt builder), the same
    /// plan (cost-balanced blocks, anchor, passing) and, greedy, the same tokens. Once for a model without a chat
    /// template (the demo model) and once with the Llama 3 template (the demo model with its header tokens added).
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task The_cluster_builds_the_prompt_and_plan_that_ask_builds_in_process(bool chatTemplate)
    {
        var ct = TestContext.Current.CancellationToken;
        var model = DemoModel(chatTemplate);
        using var cluster = await LoopbackCluster.StartAsync(hostNodes: 2, ct: ct, modelDir: model);
        var context = Path.GetTempFileName();
        try
        {
            await File.WriteAllTextAsync(context, string.Join(' ', Enumerable.Range(0, 60).Select(i => $"Item {i} is kept in room {i * 7 % 11}.")), ct);
            string[] common = ["ask", "--context", context, "--question", "Which room holds item 17?", "--mode", "apb", "-n", "6", "--json"];
            var local = await RunApbAsync(ct, [.. common, "--model", model, "--hosts", "2", "--compressor", "query"]);
            var served = await RunApbAsync(ct, [.. common, "--cluster", cluster.RouterContact]);
            Assert.True(local.Code == 0, $"in process: exit {local.Code}\n{local.Stderr}");
            Assert.True(served.Code == 0, $"cluster: exit {served.Code}\n{served.Stderr}\n{cluster.Outputs()}");
            using var a = JsonDocument.Parse(local.Stdout);
            using var b = JsonDocument.Parse(served.Stdout);
            string Ids(JsonDocument d, string key) => d.RootElement.GetProperty(key).GetRawText();
            Assert.Equal(Ids(a, "prompt_token_ids"), Ids(b, "prompt_token_ids"));
            Assert.Equal(Ids(a, "token_ids"), Ids(b, "token_ids"));
            var (pa, pb) = (a.RootElement.GetProperty("plan"), b.RootElement.GetProperty("plan"));
            foreach (var key in new[] { "mode", "hosts", "document_tokens", "question_tokens", "split", "blocks", "anchor", "passing", "padding", "compressor" })
                Assert.True(pa.GetProperty(key).GetRawText() == pb.GetProperty(key).GetRawText(),
                    $"plan.{key}: in process {pa.GetProperty(key).GetRawText()}, cluster {pb.GetProperty(key).GetRawText()}");
            Assert.Equal("\"balanced\"", pa.GetProperty("split").GetRawText());
            var blocks = pa.GetProperty("blocks").EnumerateArray().Select(x => x.GetInt32()).ToArray();
            Assert.True(blocks[0] > blocks[1], $"balanced blocks give host 0 (no anchor) more: [{string.Join(",", blocks)}]");
            // Every field of the in-process object is there for the cluster too.
            var missing = a.RootElement.EnumerateObject().Select(p => p.Name).Where(n => !b.RootElement.TryGetProperty(n, out _)).ToList();
            Assert.True(missing.Count == 0, "missing from `ask --cluster --json`: " + string.Join(", ", missing));
        }
        finally { File.Delete(context); }
    }

    /// <summary>The shipped demo model, or a copy whose tokenizer also has Llama 3's header tokens (in its unused ids),
    /// which makes every path render the Llama 3 chat template.</summary>
    internal static string DemoModel(bool chatTemplate)
    {
        var here = new DirectoryInfo(AppContext.BaseDirectory);
        var root = here.Parent!.Parent!.Parent!.Parent!.Parent!.FullName;
        var demo = Path.Combine(root, "src", "ApbCluster.Cli", "demo-model");
        if (!chatTemplate) return demo;
        var copy = Directory.CreateTempSubdirectory("apb-demo-llama3-").FullName;
        foreach (var f in Directory.GetFiles(demo)) File.Copy(f, Path.Combine(copy, Path.GetFileName(f)));
        var tokenizer = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(copy, "tokenizer.json")))!;
        var added = tokenizer["added_tokens"]!.AsArray();
        int id = 2531;
        foreach (var token in new[] { "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>" })
            added.Add(new System.Text.Json.Nodes.JsonObject
            {
                ["id"] = id++, ["content"] = token, ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false,
                ["normalized"] = false, ["special"] = true,
            });
        File.WriteAllText(Path.Combine(copy, "tokenizer.json"), tokenizer.ToJsonString());
        return copy;
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

    internal static async Task<(int Code, string Stdout, string Stderr)> RunApbAsync(CancellationToken ct, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(ApbDll());
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync(ct);
        var stderr = p.StandardError.ReadToEndAsync(ct);
        using var bound = CancellationTokenSource.CreateLinkedTokenSource(ct);
        bound.CancelAfter(TimeSpan.FromMinutes(10)); // a hang guard only: a loaded 2-core machine stretches process start-up
        try { await p.WaitForExitAsync(bound.Token); }
        catch (OperationCanceledException) { p.Kill(entireProcessTree: true); throw new TimeoutException("apb ask did not finish in 10 minutes: hung?"); }
        return (p.ExitCode, await stdout, await stderr);
    }
}
