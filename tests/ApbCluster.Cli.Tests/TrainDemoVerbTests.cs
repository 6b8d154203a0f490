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
    [InlineData("--init", "/no/such/model", "init model folder /no/such/model does not exist")]
    [InlineData("--question-in-context", "1.5", "question-in-context share (1.5) must lie in [0, 1]")]
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

        // Continuing from it: the same seed gives the same first batch, so a step-1 loss other than the fresh run's
        // step 1 shows the trained weights were loaded (CPU runs are deterministic); the folder it came from is recorded.
        var firstLoss = double.Parse(lines[1].Split(',')[4], System.Globalization.CultureInfo.InvariantCulture);
        var more = Path.Combine(dir, "more");
        var c = ApbProcess.Run("train", "demo-model", "--out", more, "--size", "tiny", "--max-length", "256", "--steps", "1",
            "--batch-tokens", "512", "--curriculum", "256:1", "--init", model);
        Assert.True(c.ExitCode == 0, c.Stderr);
        Assert.Contains($"continuing from {model}", c.Stderr);
        var continued = double.Parse(System.Text.RegularExpressions.Regex.Match(c.Stdout, @"step 1 len 256 x2 loss ([0-9.]+)").Groups[1].Value,
            System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(Math.Abs(continued - firstLoss) > 1e-4, $"continued step-1 loss {continued} equals the fresh run's {firstLoss}");
        var record = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(more, "training.json")))!;
        Assert.Equal(Path.GetFullPath(model), (string?)record["init_from"]);
        // The lineage: the first run's own record (3 steps, no init of its own) nested inside.
        Assert.Equal(3, (int?)record["init_record"]?["steps"]);
        Assert.Null(record["init_record"]?["init_record"]);
        Assert.Equal(1, (int?)record["steps"]);

        // Untying on the way: lm_head starts as a copy of the tied embedding, so the outputs (and the step-1 loss on
        // the same first batch) are those of the tied continuation; the new folder is untied.
        var untied = Path.Combine(dir, "untied");
        var u = ApbProcess.Run("train", "demo-model", "--out", untied, "--size", "tiny", "--max-length", "256", "--steps", "1",
            "--batch-tokens", "512", "--curriculum", "256:1", "--init", model, "--untied-embeddings");
        Assert.True(u.ExitCode == 0, u.Stderr);
        var untiedLoss = double.Parse(System.Text.RegularExpressions.Regex.Match(u.Stdout, @"step 1 len 256 x2 loss ([0-9.]+)").Groups[1].Value,
            System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(Math.Abs(untiedLoss - continued) < 1e-3, $"untied continuation's step-1 loss {untiedLoss} differs from the tied one's {continued}");
        Assert.Contains("\"tie_word_embeddings\": false", File.ReadAllText(Path.Combine(untied, "config.json")));
        // ... but tying an untied model would drop its lm_head: refused by name.
        var retie = ApbProcess.Run("train", "demo-model", "--out", Path.Combine(dir, "retie"), "--size", "tiny", "--max-length", "256",
            "--steps", "1", "--batch-tokens", "512", "--curriculum", "256:1", "--init", untied);
        Assert.Equal(2, retie.ExitCode);
        Assert.Contains("tie_word_embeddings is False, this architecture has True", retie.Stderr);

        // A model of another size is refused by name.
        var wrong = ApbProcess.Run("train", "demo-model", "--out", Path.Combine(dir, "wrong"), "--size", "demo", "--max-length", "256",
            "--steps", "1", "--init", model);
        Assert.Equal(2, wrong.ExitCode);
        Assert.Contains("num_hidden_layers is 2, this architecture has 4", wrong.Stderr);
    }
}
