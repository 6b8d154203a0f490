using System.Text.Json;
using ApbCluster.Model.Tests.Support;
using Xunit;

namespace ApbCluster.Cli.Tests;

public class EvalVerbTests
{
    private static readonly Lazy<string> Llama = new(() => TinyCheckpoint.Create(TinyCheckpointOptions.Llama));

    private static string TempDir() => Path.Combine(Path.GetTempPath(), "apb-cli-eval-" + Guid.NewGuid().ToString("N")[..8]);

    [Theory]
    [InlineData("--tasks", "single-needle,haystack", "unknown task 'haystack'")]
    [InlineData("--modes", "dense,apb-fast", "unknown mode 'apb-fast'")]
    [InlineData("--modes", "apb-retaining", "needs --retaining-heads")]
    [InlineData("--lengths", "4k", "max_position_embeddings")]
    [InlineData("--retaining-heads", "/nonexistent/heads.safetensors", "file not found")]
    [InlineData("--shard", "2/2", "'2/2' is not I/N")]
    [InlineData("--shard", "1", "'1' is not I/N")]
    [InlineData("--time-limit", "-5", "--time-limit -5: must be a positive number of seconds")]
    [InlineData("--anchor-divisor", "0", "--anchor-divisor 0: must be at least 1")]
    [InlineData("--modes", "apb-criti", "--modes apb-criti needs --retaining-heads")]
    [InlineData("--criti-block", "0", "--criti-block 0: must be positive")]
    [InlineData("--criti-segment", "100", "--criti-segment 100: must be a multiple of --criti-block (32)")]
    [InlineData("--modes", "apb-shadowkv", "--modes apb-shadowkv needs --retaining-heads")]
    [InlineData("--shadow-chunk", "0", "--shadow-chunk 0: must be positive")]
    [InlineData("--shadow-budget", "100", "--shadow-budget 100: must be a multiple of --shadow-chunk (8)")]
    public void BadOptionsAreUsageErrors(string option, string value, string message)
    {
        var r = ApbProcess.Run("eval", "--model", Llama.Value, option, value, "--out", TempDir());
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(message, r.Stderr);
    }

    [Fact]
    public void TrainsHeadsAndEvaluatesWithThem()
    {
        var dir = TempDir();
        var heads = Path.Combine(dir, "heads.safetensors");
        var t = ApbProcess.Run("train", "retaining-heads", "--model", Llama.Value, "--out", heads, "--steps", "3", "--seq-len", "512");
        Assert.True(t.ExitCode == 0, t.Stderr);
        Assert.Contains("step 3/3 loss", t.Stderr);
        Assert.Equal(4, File.ReadAllLines(Path.Combine(dir, "heads.loss.csv")).Length);

        // The CritiPrefill modes with a threshold beyond the prompt attend in full, and the ShadowKV modes with uncapped rank
        // and budget attend every key: they answer as their base modes.
        var e = ApbProcess.Run("eval", "--model", Llama.Value, "--tasks", "single-needle", "--lengths", "512", "--hosts", "2",
            "--modes", "dense,apb-retaining,dense-criti,apb-criti,dense-shadowkv,apb-shadowkv", "--criti-threshold", "100000",
            "--shadow-rank", "100000", "--shadow-budget", "100000", "--shadow-outliers", "2", "--shadow-local", "1",
            "--samples", "1", "--retaining-heads", heads, "--out", dir);
        Assert.True(e.ExitCode == 0, e.Stderr);
        Assert.Contains("| single-needle | 512 | 2 |", e.Stdout);
        Assert.Contains("CritiPrefill inside APB minus apb-retaining", e.Stdout);
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "eval.json")));
        Assert.Contains("ShadowKV inside APB minus apb-retaining", e.Stdout);
        Assert.Equal(6, doc.RootElement.GetProperty("Cells").GetArrayLength());
        var predictions = doc.RootElement.GetProperty("Rows").EnumerateArray()
            .ToDictionary(r => r.GetProperty("Mode").GetString()!, r => r.GetProperty("Prediction").GetString());
        Assert.Equal(predictions["dense"], predictions["dense-criti"]);
        Assert.Equal(predictions["apb-retaining"], predictions["apb-criti"]);
        Assert.Equal(predictions["dense"], predictions["dense-shadowkv"]);
        Assert.Equal(predictions["apb-retaining"], predictions["apb-shadowkv"]);
        Assert.True(File.Exists(Path.Combine(dir, "eval.png")));
    }

    [Fact]
    public void HeadTrainingStopsAtItsTimeLimitAndStillSavesTheHeads()
    {
        var dir = TempDir();
        var heads = Path.Combine(dir, "heads.safetensors");
        var t = ApbProcess.Run("train", "retaining-heads", "--model", Llama.Value, "--out", heads, "--steps", "100000", "--seq-len", "512",
            "--time-limit", "0.001");
        Assert.True(t.ExitCode == 0, t.Stderr);
        Assert.Contains("stopped by the time limit after 1 of 100000 steps", t.Stderr);
        Assert.True(File.Exists(heads));

        var bad = ApbProcess.Run("train", "retaining-heads", "--model", Llama.Value, "--out", heads, "--time-limit", "0");
        Assert.Equal(2, bad.ExitCode);
        Assert.Contains("--time-limit 0: must be a positive number of seconds", bad.Stderr);
    }

    /// <summary>Two shards cover exactly the samples of the whole run, with the same predictions; merged, they give its table.</summary>
    [Fact]
    public void ShardsMergeIntoTheWholeRun()
    {
        var dir = TempDir();
        string[] common = ["eval", "--model", Llama.Value, "--tasks", "single-needle,variable-tracking", "--lengths", "512", "--hosts", "2",
            "--modes", "dense,apb-query", "--samples", "3"];
        var whole = ApbProcess.Run([.. common, "--out", Path.Combine(dir, "whole")]);
        var a = ApbProcess.Run([.. common, "--shard", "0/2", "--out", Path.Combine(dir, "a")]);
        var b = ApbProcess.Run([.. common, "--shard", "1/2", "--out", Path.Combine(dir, "b")]);
        Assert.True(whole.ExitCode == 0 && a.ExitCode == 0 && b.ExitCode == 0, whole.Stderr + a.Stderr + b.Stderr);
        var m = ApbProcess.Run("eval", "merge", Path.Combine(dir, "a"), Path.Combine(dir, "b"), "--out", Path.Combine(dir, "merged"));
        Assert.True(m.ExitCode == 0, m.Stderr);
        Assert.Contains("merged 2 reports (12 runs)", m.Stderr);

        static List<string> Rows(string folder)
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "eval.json")));
            return doc.RootElement.GetProperty("Rows").EnumerateArray()
                .Select(r => $"{r.GetProperty("Task")} {r.GetProperty("Sample")} {r.GetProperty("Hosts")} {r.GetProperty("Mode")} {r.GetProperty("Seed")} {r.GetProperty("Prediction")}")
                .Order().ToList();
        }
        Assert.Equal(8, Rows(Path.Combine(dir, "a")).Count); // samples 0 and 2 of 2 tasks, dense and apb-query
        Assert.Equal(Rows(Path.Combine(dir, "whole")), Rows(Path.Combine(dir, "merged")));
        string Table(string folder) => string.Join('\n', File.ReadAllLines(Path.Combine(folder, "eval.md")).Where(l => l.StartsWith('|')));
        Assert.Equal(Table(Path.Combine(dir, "whole")), Table(Path.Combine(dir, "merged")));

        var overlap = ApbProcess.Run("eval", "merge", Path.Combine(dir, "a"), Path.Combine(dir, "whole"), "--out", Path.Combine(dir, "bad"));
        Assert.Equal(2, overlap.ExitCode);
        Assert.Contains("is in more than one report", overlap.Stderr);
        var missing = ApbProcess.Run("eval", "merge", Path.Combine(dir, "nothing-here"), "--out", Path.Combine(dir, "bad2"));
        Assert.Equal(1, missing.ExitCode);
        Assert.Contains("no eval.json there", missing.Stderr);
    }
}
