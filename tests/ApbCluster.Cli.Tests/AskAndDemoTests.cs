using System.Text.Json;
using ApbCluster.Model.Tests.Support;
using Xunit;

namespace ApbCluster.Cli.Tests;

public class AskAndDemoTests
{
    private static readonly Lazy<string> Llama = new(() => TinyCheckpoint.Create(TinyCheckpointOptions.Llama with { KvHeads = 2 }));
    private static readonly Lazy<string> Context = new(() =>
    {
        var path = Path.Combine(Path.GetTempPath(), $"apb-context-{Guid.NewGuid():N}.txt");
        File.WriteAllText(path, string.Join(' ', Enumerable.Repeat("The quick brown fox jumps over the lazy dog.", 40)));
        return path;
    });

    private static JsonElement Ask(params string[] extra)
    {
        var r = ApbProcess.Run(["ask", "--model", Llama.Value, "--context", Context.Value, "--question", "What jumps?", "-n", "6", "--json", .. extra]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        return JsonDocument.Parse(r.Stdout).RootElement.Clone();
    }

    private static int[] Tokens(JsonElement e) => e.GetProperty("token_ids").EnumerateArray().Select(x => x.GetInt32()).ToArray();

    [Fact]
    public void ExactModesAnswerLikeDense()
    {
        var dense = Ask("--mode", "dense");
        Assert.Equal(Tokens(dense), Tokens(Ask("--mode", "ring", "--hosts", "3")));
        Assert.Equal(Tokens(dense), Tokens(Ask("--mode", "ulysses", "--hosts", "2")));
        Assert.Equal(Tokens(dense), Tokens(Ask("--mode", "apb", "--hosts", "3", "--anchor", "0", "--passing", "all")));
    }

    [Fact]
    public void ApbReportsItsPlanAndPerHostTimings()
    {
        var apb = Ask("--mode", "apb", "--hosts", "3");
        var plan = apb.GetProperty("plan");
        Assert.Equal(3, plan.GetProperty("hosts").GetInt32());
        Assert.True(plan.GetProperty("anchor").GetInt32() > 0);
        Assert.True(plan.GetProperty("passing").GetInt32() > 0);
        Assert.Equal(3, apb.GetProperty("timings").GetProperty("hosts").GetArrayLength());
        Assert.Equal(6, Tokens(apb).Length);
    }

    [Fact]
    public void CritiPrefillPrunesDenseAndApbHostsAndEqualsFullBeyondItsThreshold()
    {
        string[] beyond = ["--prefill-attention", "critiprefill", "--criti-threshold", "100000"];
        Assert.Equal(Tokens(Ask("--mode", "dense")), Tokens(Ask(["--mode", "dense", .. beyond])));
        Assert.Equal(Tokens(Ask("--mode", "apb", "--hosts", "2")), Tokens(Ask(["--mode", "apb", "--hosts", "2", .. beyond])));
        string[] pruning = ["--prefill-attention", "critiprefill", "--criti-segment", "16", "--criti-block", "4", "--criti-budget", "16", "--criti-threshold", "0"];
        foreach (var mode in new[] { "dense", "apb" })
        {
            var r = ApbProcess.Run(["ask", "--model", Llama.Value, "--context", Context.Value, "--question", "What jumps?", "-n", "6", "--mode", mode, "--hosts", "2", .. pruning]);
            Assert.True(r.ExitCode == 0, r.Stderr);
            Assert.Contains("prefill attention critiprefill (segment 16, block 4, budget 16, threshold 0)", r.Stderr);
            Assert.Contains("criticality", r.Stderr); // its own phase in the per-host timings
        }
    }

    [Theory]
    [InlineData("--prefill-attention critiprefill --criti-segment 100", "--criti-segment 100: must be a multiple of --criti-block (32)")]
    [InlineData("--prefill-attention critiprefill --criti-budget 0", "--criti-budget 0: must be positive")]
    [InlineData("--prefill-attention critiprefill --criti-threshold -1", "--criti-threshold -1: must be 0 or more")]
    [InlineData("--prefill-attention sparse", "--prefill-attention 'sparse': expected full or critiprefill")]
    [InlineData("--criti-budget 64", "--criti-budget applies with --prefill-attention critiprefill")]
    [InlineData("--prefill-attention critiprefill --mode ring", "--prefill-attention critiprefill runs with --mode dense, apb or star, not ring")]
    public void BadPrefillAttentionOptionsAreUsageErrors(string options, string message)
    {
        var r = ApbProcess.Run(["ask", "--model", Llama.Value, "--context", Context.Value, "--question", "q", .. options.Split(' ')]);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("error: " + message, r.Stderr);
    }

    [Fact]
    public void ShadowKvAtFullRankAnswersLikeTheFullStoreAndSparseItStillAnswers()
    {
        string[] lossless = ["--kv", "shadowkv", "--shadow-rank", "100000", "--shadow-budget", "100000", "--shadow-outliers", "2", "--shadow-local", "1"];
        Assert.Equal(Tokens(Ask("--mode", "dense")), Tokens(Ask(["--mode", "dense", .. lossless])));
        Assert.Equal(Tokens(Ask("--mode", "apb", "--hosts", "2")), Tokens(Ask(["--mode", "apb", "--hosts", "2", .. lossless])));
        string[] sparse = ["--kv", "shadowkv", "--shadow-rank", "4", "--shadow-budget", "16", "--shadow-outliers", "1", "--shadow-values", "host"];
        var r = ApbProcess.Run(["ask", "--model", Llama.Value, "--context", Context.Value, "--question", "What jumps?", "-n", "6", "--mode", "apb", "--hosts", "2", .. sparse]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("kv shadowkv (rank 4, chunk 8, budget 16, outliers 1, local 4, values on host)", r.Stderr);
        Assert.Contains("V chunks reused from the previous step", r.Stderr);
    }

    [Theory]
    [InlineData("--kv shadowkv --shadow-budget 100", "--shadow-budget 100: must be a multiple of --shadow-chunk (8)")]
    [InlineData("--kv shadowkv --shadow-rank 0", "--shadow-rank 0: must be positive")]
    [InlineData("--kv shadowkv --shadow-outliers -1", "--shadow-outliers -1: must be 0 or more")]
    [InlineData("--kv shadowkv --shadow-values gpu", "--shadow-values 'gpu': expected device or host")]
    [InlineData("--kv sparse", "--kv 'sparse': expected full or shadowkv")]
    [InlineData("--shadow-rank 64", "--shadow-rank applies with --kv shadowkv")]
    public void BadKvStoreOptionsAreUsageErrors(string options, string message)
    {
        var r = ApbProcess.Run(["ask", "--model", Llama.Value, "--context", Context.Value, "--question", "q", .. options.Split(' ')]);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("error: " + message, r.Stderr);
    }

    [Fact]
    public void RetainingCompressorWithoutHeadsIsAUsageError()
    {
        var r = ApbProcess.Run("ask", "--model", Llama.Value, "--context", Context.Value, "--question", "q", "--compressor", "retaining");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--retaining-heads", r.Stderr);
    }

    [Fact]
    public void AnchorLongerThanABlockIsAClearError()
    {
        var r = ApbProcess.Run("ask", "--model", Llama.Value, "--context", Context.Value, "--question", "q", "--hosts", "2", "--anchor", "100000");
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("anchor", r.Stderr);
    }

    /// <summary>The README's main command as CI runs it: the bundled trained model, 8K tokens, 4 virtual hosts.
    /// Dense and APB (both compressors) must find the needle, and dense must follow the variable chain; APB's and
    /// star's chains are printed, not asserted (the shipped model's APB runs get two or three of its four names:
    /// docs/training.md).</summary>
    [Fact]
    public void DemoAnswersTheNeedleWithDenseAndApbOnTheBundledModel()
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var r = ApbProcess.Run("demo");
        Assert.True(r.ExitCode == 0, r.Stderr + r.Stdout);
        TestContext.Current.TestOutputHelper?.WriteLine($"apb demo took {clock.Elapsed.TotalSeconds:F1} s\n{r.Stdout}");
        var needle = r.Stdout[..r.Stdout.IndexOf("2. variable-tracking", StringComparison.Ordinal)];
        var expected = System.Text.RegularExpressions.Regex.Match(needle, @"Expected: (\d+)").Groups[1].Value;
        Assert.NotEmpty(expected);
        foreach (var mode in new[] { "dense", "apb query-aware", "apb retaining heads" })
            Assert.Matches($@"(?m)^   {mode}\s+\d.*\byes\s+""{expected}""$", needle);
        Assert.Contains("star", needle);
        var chain = r.Stdout[r.Stdout.IndexOf("2. variable-tracking", StringComparison.Ordinal)..];
        var names = System.Text.RegularExpressions.Regex.Match(chain, @"Expected: ([A-Z, ]+)\n").Groups[1].Value.Trim();
        Assert.NotEmpty(names);
        Assert.Matches($@"(?m)^   dense\s+\d.*\byes\s+""{names}""$", chain);
        // A chain half followed shows how much of it was found, not just "no".
        foreach (var mode in new[] { "star", "apb query-aware" })
            Assert.Matches($@"(?m)^   {mode}\s+\d.*\b(yes|no|[1-3]/4)\s+""", chain);
        Assert.Contains("passes those to every later host", r.Stdout);
        Assert.Matches(@"the hosts sent each other \d+\.\d [KM]iB in prefill \(each block's \d+ passed tokens", r.Stdout);
        Assert.Matches(@"Right answers: .*\. Total \d+\.\d s\.", r.Stdout);
    }

    [Fact]
    public void DemoWithoutItsModelNamesTheFolder()
    {
        var r = ApbProcess.Run("demo", "--model", Path.Combine(Path.GetTempPath(), "no-such-model-" + Guid.NewGuid().ToString("N")));
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("no config.json", r.Stderr);
    }

    [Fact]
    public void ExactnessDemoRunsEveryModeAndExactModesMatchDense()
    {
        var r = ApbProcess.Run("demo", "--exactness", "--tokens", "2048");
        Assert.True(r.ExitCode == 0, r.Stderr + r.Stdout);
        foreach (var mode in new[] { "ring", "ulysses", "apb lossless" })
            Assert.Matches($@"(?m)^{mode}\s.*identical", r.Stdout);
        // Each lossy mode says why it differs; the hosts' traffic is measured (dense on one host sends nothing, apb passes blocks).
        Assert.Matches(@"(?m)^star\s.*lossy: see below", r.Stdout);
        Assert.Matches(@"(?m)^  star: a host computes its block seeing only the anchor and its own block", r.Stdout);
        Assert.Matches(@"(?m)^  apb: a host also sees \d+ tokens \(l_p\) of each earlier block", r.Stdout);
        Assert.Matches(@"(?m)^dense\s+1\s.*\s0 B  \(reference\)", r.Stdout);
        Assert.Matches(@"(?m)^apb\s+4\s.*\s\d+\.\d [KM]iB  \d+/\d+ equal", r.Stdout);
        Assert.Matches(@"Total \d+\.\d s\.", r.Stdout);
    }

    /// <summary>The README's layout for the demo model, as a user would type it: ask retrieves the number and says what the model is.</summary>
    [Fact]
    public void DemoModelAnswersInItsTrainingLayoutAndSaysWhatItIs()
    {
        var context = Path.Combine(Path.GetTempPath(), $"apb-demo-context-{Guid.NewGuid():N}.txt");
        File.WriteAllText(context, "Context:\nThe special magic number for harbour-falcon is 123. The sky is blue.\n");
        var r = ApbProcess.Run("ask", "--model", Path.Combine(AppContext.BaseDirectory, "demo-model"), "--context", context,
            "--question", "Question: What is the special magic number for harbour-falcon?\nAnswer:", "--mode", "dense", "-n", "3");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.StartsWith(" 123", r.Stdout);
        Assert.Contains("demo model", r.Stderr);
        Assert.Contains("not a chat model", r.Stderr);
    }
}
