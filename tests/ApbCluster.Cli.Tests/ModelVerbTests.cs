using System.Text.Json;
using ApbCluster.Model.Generation;
using ApbCluster.Model.Layers;
using ApbCluster.Model.Loading;
using ApbCluster.Model.Tests.Support;
using ApbCluster.NativeInterop;
using Xunit;

namespace ApbCluster.Cli.Tests;

public class ModelVerbTests
{
    private static readonly Lazy<string> Llama = new(() => TinyCheckpoint.Create(TinyCheckpointOptions.Llama));

    [Fact]
    public void InfoDescribesTheCheckpoint()
    {
        var r = ApbProcess.Run("info", "--model", Llama.Value, "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var doc = JsonDocument.Parse(r.Stdout);
        Assert.Equal("llama", doc.RootElement.GetProperty("model_type").GetString());
        Assert.Equal(TinyCheckpointOptions.Llama.Layers, doc.RootElement.GetProperty("layers").GetInt32());
        Assert.True(doc.RootElement.GetProperty("parameters").GetInt64() > 0);
    }

    [Fact]
    public void GenerateJsonMatchesTheLibraryGreedyResult()
    {
        var r = ApbProcess.Run("generate", "--model", Llama.Value, "--prompt", "hello world", "--max-new-tokens", "8", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var doc = JsonDocument.Parse(r.Stdout);
        var root = doc.RootElement;
        var promptIds = root.GetProperty("prompt_token_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        var tokenIds = root.GetProperty("token_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        Assert.NotEmpty(root.GetProperty("finish_reason").GetString()!);
        Assert.True(root.GetProperty("timings").GetProperty("prefill_ms").GetDouble() >= 0);

        // The same request through the library, in this process.
        TorchRuntime.EnsureLoaded("cpu");
        using var folder = ModelFolder.Open(Llama.Value);
        Assert.Equal(folder.Tokenizer.Encode("hello world", addBos: folder.Tokenizer.BosId != null), promptIds);
        using var model = LlamaModel.FromCheckpoint(folder.Config, folder.Weights, TorchSharp.torch.CPU, TorchSharp.torch.ScalarType.Float32);
        using var gen = new Generator(model);
        var expected = gen.Generate(promptIds, new GenerationOptions { MaxNewTokens = 8, EosTokenIds = folder.Tokenizer.EosIds.Concat(folder.Config.EosTokenIds).ToArray() },
            cancellationToken: TestContext.Current.CancellationToken);
        Assert.Equal(expected.TokenIds, tokenIds);
    }

    [Fact]
    public void GenerateWithCritiPrefillBeyondItsThresholdEqualsFullAndPrunesBelowIt()
    {
        string prompt = string.Join(' ', Enumerable.Repeat("the quick brown fox", 30));
        int[] Tokens(params string[] extra)
        {
            var r = ApbProcess.Run(["generate", "--model", Llama.Value, "--prompt", prompt, "--max-new-tokens", "8", "--json", .. extra]);
            Assert.True(r.ExitCode == 0, r.Stderr);
            using var doc = JsonDocument.Parse(r.Stdout);
            return doc.RootElement.GetProperty("token_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        }
        Assert.Equal(Tokens(), Tokens("--prefill-attention", "critiprefill", "--criti-threshold", "100000"));
        Assert.Equal(8, Tokens("--prefill-attention", "critiprefill", "--criti-segment", "16", "--criti-block", "4", "--criti-budget", "8", "--criti-threshold", "0").Length);
    }

    [Fact]
    public void BenchTimesTheCritiPrefillModesWithACriticalityPhase()
    {
        var dir = Path.Combine(Path.GetTempPath(), "apb-cli-bench-" + Guid.NewGuid().ToString("N")[..8]);
        var r = ApbProcess.Run("bench", "--shape", "tiny", "--device", "cpu", "--dtype", "float32", "--lengths", "512", "--hosts", "2",
            "--modes", "dense-criti,apb-criti", "--warmup", "0", "--repeats", "1", "--criti-segment", "64", "--criti-block", "8",
            "--criti-budget", "64", "--criti-threshold", "0", "--out", dir);
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "bench.json")));
        var prefill = doc.RootElement.GetProperty("Prefill").EnumerateArray().ToList();
        Assert.Equal(["dense-criti", "apb-criti"], prefill.Select(p => p.GetProperty("Mode").GetString()));
        Assert.All(prefill, p => Assert.True(p.GetProperty("PhaseMs").TryGetProperty("criticality", out _)));
        var bad = ApbProcess.Run("bench", "--shape", "tiny", "--device", "cpu", "--modes", "ring-criti", "--out", dir);
        Assert.Equal(2, bad.ExitCode);
        Assert.Contains("'ring-criti' is not one of dense, dense-criti", bad.Stderr);
    }

    [Fact]
    public void BenchServesConcurrentQueriesWithDecodeBatchedOffAndOn()
    {
        var dir = Path.Combine(Path.GetTempPath(), "apb-cli-serve-" + Guid.NewGuid().ToString("N")[..8]);
        var r = ApbProcess.Run("bench", "--shape", "tiny", "--device", "cpu", "--dtype", "float32", "--serve-queries", "1,2",
            "--serve-context", "256", "--hosts", "2", "--decode-steps", "4", "--serve-batch-wait", "0", "--out", dir);
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "bench.json")));
        var serve = doc.RootElement.GetProperty("Serve").EnumerateArray().ToList();
        // One query: unbatched only (the same path); two: off, then on.
        Assert.Equal([(1, false), (2, false), (2, true)], serve.Select(s => (s.GetProperty("Queries").GetInt32(), s.GetProperty("BatchDecode").GetBoolean())));
        Assert.All(serve, s => Assert.True(s.GetProperty("DecodeTokensPerSecond").GetDouble() > 0));
        Assert.Equal(0, serve[1].GetProperty("Calls").GetInt64()); // unbatched: no batcher calls at all
        Assert.Contains("Concurrent queries", File.ReadAllText(Path.Combine(dir, "bench.md")));
        foreach (var (option, value, expected) in new[]
        {
            ("--serve-queries", "max", "--serve-queries takes whole numbers"),
            ("--serve-queries", "two", "--serve-queries 'two'"),
            ("--serve-batch-wait", "soon", "--serve-batch-wait 'soon'"),
        })
        {
            var bad = ApbProcess.Run("bench", "--shape", "tiny", "--device", "cpu", option, value, "--out", dir);
            Assert.Equal(2, bad.ExitCode);
            Assert.Contains(expected, bad.Stderr);
        }
    }

    [Fact]
    public void GenerateFromALosslessShadowKvStoreEqualsTheFullGenerateAndASparseOneStillGenerates()
    {
        string prompt = string.Join(' ', Enumerable.Repeat("the quick brown fox", 30));
        JsonElement Generate(params string[] extra)
        {
            var r = ApbProcess.Run(["generate", "--model", Llama.Value, "--prompt", prompt, "--max-new-tokens", "8", "--json", .. extra]);
            Assert.True(r.ExitCode == 0, r.Stderr);
            using var doc = JsonDocument.Parse(r.Stdout);
            return doc.RootElement.Clone();
        }
        static int[] Ids(JsonElement e) => e.GetProperty("token_ids").EnumerateArray().Select(t => t.GetInt32()).ToArray();
        // Rank and budget beyond the prompt: every key rebuilt exactly, so greedy decoding picks the same tokens.
        string[] lossless = ["--kv", "shadowkv", "--shadow-rank", "100000", "--shadow-chunk", "4", "--shadow-budget", "100000", "--shadow-outliers", "2", "--shadow-local", "1"];
        var full = Generate();
        Assert.Equal(Ids(full), Ids(Generate(lossless)));
        Assert.Equal(Ids(full), Ids(Generate([.. lossless, "--shadow-values", "host"])));

        // A stop string ends both the same way: the text cut before it, finish "stop".
        string text = full.GetProperty("text").GetString()!;
        Assert.True(text.Trim().Length >= 2, $"the full run generated too little text to stop in: '{text}'");
        string stop = text.Trim()[1..2];
        var (fullStop, shadowStop) = (Generate("--stop", stop), Generate([.. lossless, "--stop", stop]));
        Assert.Equal(fullStop.GetProperty("text").GetString(), shadowStop.GetProperty("text").GetString());
        Assert.Equal(("stop", "stop"), (fullStop.GetProperty("finish_reason").GetString(), shadowStop.GetProperty("finish_reason").GetString()));

        // Sparse: rank 4, 2 chunks a step; still 8 tokens (or an end of sequence), and the store's size on stderr.
        var sparse = ApbProcess.Run("generate", "--model", Llama.Value, "--prompt", prompt, "-n", "8", "--kv", "shadowkv", "--shadow-rank", "4",
            "--shadow-budget", "16", "--shadow-outliers", "1", "--shadow-values", "host");
        Assert.True(sparse.ExitCode == 0, sparse.Stderr);
        Assert.Contains("kv: shadowkv (rank 4, chunk 8, budget 16, outliers 1, local 4, values on host)", sparse.Stderr);
        Assert.Matches(@"shadowkv store of \d+ tokens: \d+\.\d MiB on the device, \d+\.\d MiB in host memory", sparse.Stderr);
    }

    [Theory]
    [InlineData("--kv shadowkv --shadow-budget 100", "--shadow-budget 100: must be a multiple of --shadow-chunk (8)")]
    [InlineData("--kv shadowkv --shadow-rank 0", "--shadow-rank 0: must be positive")]
    [InlineData("--kv shadowkv --shadow-values gpu", "--shadow-values 'gpu': expected device or host")]
    [InlineData("--kv sparse", "--kv 'sparse': expected full or shadowkv")]
    [InlineData("--shadow-rank 64", "--shadow-rank applies with --kv shadowkv")]
    public void BadKvStoreOptionsOnGenerateAreUsageErrors(string options, string message)
    {
        var r = ApbProcess.Run(["generate", "--model", Llama.Value, "--prompt", "x", .. options.Split(' ')]);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("error: " + message, r.Stderr);
        Assert.Equal("", r.Stdout);
    }

    [Fact]
    public void GenerateStreamsTextAndReportsTimingsOnStderr()
    {
        var r = ApbProcess.Run("generate", "--model", Llama.Value, "--prompt", "abc", "-n", "4");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("prefill", r.Stderr);
        Assert.DoesNotContain("prefill", r.Stdout);
    }

    [Fact]
    public void LogitsWritesASafetensorsFile()
    {
        var output = Path.Combine(Path.GetTempPath(), $"apb-logits-{Guid.NewGuid():N}.safetensors");
        var r = ApbProcess.Run("logits", "--model", Llama.Value, "--ids", "1,5,9,20", "--greedy", "3", "--out", output);
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var f = SafeTensorsFile.Open(output);
        Assert.Equal([4L, TinyCheckpointOptions.Llama.VocabSize], f.Info("logits").Shape);
        Assert.Equal([3L], f.Info("greedy").Shape);
    }

    [Fact]
    public void MissingModelFolderIsAClearErrorWithExitCode1()
    {
        var r = ApbProcess.Run("info", "--model", "/nonexistent/model");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("/nonexistent/model", r.Stderr);
        Assert.DoesNotContain("   at ", r.Stderr); // no stack trace
    }

    [Fact]
    public void ConflictingPromptOptionsAreAUsageError()
    {
        var r = ApbProcess.Run("generate", "--model", Llama.Value);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--prompt", r.Stderr);
    }

    [Fact]
    public void UnknownDeviceIsAUsageError()
    {
        var r = ApbProcess.Run("generate", "--model", Llama.Value, "--prompt", "x", "--device", "tpu");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--device 'tpu'", r.Stderr);
    }
}
