using Xunit;

namespace ApbCluster.Cli.Tests;

public class TrainDemoVerbTests
{
    private static string TempDir() => Path.Combine(Path.GetTempPath(), "apb-cli-demo-" + Guid.NewGuid().ToString("N")[..8]);

    [Theory]
    [InlineData("--size", "huge", "unknown model size 'huge'")]
    [InlineData("--max-length", "100", "must be at least 256 tokens")]
    [InlineData("--max-length", "64k", "exceeds the model's max_position_embeddings")]
    [InlineData("--steps", "0", "steps (0) must be at least 1")]
    [InlineData("--time-limit", "-5", "time limit (-5 s) must be positive")]
    [InlineData("--save-dtype", "int8", "--save-dtype 'int8'")]
    [InlineData("--device", "tpu", "--device 'tpu'")]
    [InlineData("--curriculum", "512-0.5", "'512-0.5' is not LENGTH:SHARE")]
    [InlineData("--curriculum", "32k:1", "phase length 32768 must lie in [256, 16384]")]
    [InlineData("--task-weights", "haystack:1", "unknown task 'haystack'")]
    [InlineData("--task-weights", "single-needle:-1", "task weights must be non-negative")]
    public void BadOptionsAreUsageErrors(string option, string value, string message)
    {
        var r = ApbProcess.Run("train", "demo-model", "--out", TempDir(), option, value);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(message, r.Stderr);
    }

    [Fact]
    public void TrainsATinyModelThatTheOtherVerbsLoad()
    {
        var dir = TempDir();
        var model = Path.Combine(dir, "model");
        var csv = Path.Combine(dir, "log.csv");
        var t = ApbProcess.Run("train", "demo-model", "--out", model, "--size", "tiny", "--max-length", "256", "--steps", "3",
            "--batch-tokens", "512", "--log", csv, "--curriculum", "256:1");
        Assert.True(t.ExitCode == 0, t.Stderr);
        Assert.Contains("step 3 len 256 x2 loss", t.Stdout);
        Assert.Contains("phase 1/1: up to 256 tokens, 2 sequences a step", t.Stderr);
        var lines = File.ReadAllLines(csv);
        Assert.Equal(4, lines.Length);
        Assert.StartsWith("step,phase,length,batch,loss,answer_loss", lines[0]);

        var info = ApbProcess.Run("info", "--model", model);
        Assert.True(info.ExitCode == 0, info.Stderr);
        Assert.Contains("llama", info.Stdout);
    }
}
