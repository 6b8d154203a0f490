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
