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

        var e = ApbProcess.Run("eval", "--model", Llama.Value, "--tasks", "single-needle", "--lengths", "512", "--hosts", "2",
            "--modes", "dense,apb-retaining", "--samples", "1", "--retaining-heads", heads, "--out", dir);
        Assert.True(e.ExitCode == 0, e.Stderr);
        Assert.Contains("| single-needle | 512 | 2 |", e.Stdout);
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "eval.json")));
        Assert.Equal(2, doc.RootElement.GetProperty("Cells").GetArrayLength());
        Assert.True(File.Exists(Path.Combine(dir, "eval.png")));
    }
}
