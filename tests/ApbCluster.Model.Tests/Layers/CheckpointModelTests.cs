using ApbCluster.Model.Generation;
using ApbCluster.Model.Layers;
using ApbCluster.Model.Loading;
using ApbCluster.Model.Tests.Support;
using ApbCluster.NativeInterop;
using Xunit;
using static TorchSharp.torch;
using Generator = ApbCluster.Model.Generation.Generator;

namespace ApbCluster.Model.Tests.Layers;

/// <summary>The model loaded from tiny checkpoints in real HF layout (the loading branch's TinyCheckpoint).</summary>
public class CheckpointModelTests
{
    public CheckpointModelTests() => TorchRuntime.EnsureLoaded("cpu");

    public static TheoryData<string, bool> Checkpoints => new()
    {
        { "llama", false }, { "llama", true }, { "qwen2", false }, { "qwen2", true },
    };

    [Theory]
    [MemberData(nameof(Checkpoints))]
    public void LoadedModelMatchesFloat64Reference(string type, bool sharded)
    {
        var options = (type == "llama" ? TinyCheckpointOptions.Llama with { Llama3RopeScaling = true } : TinyCheckpointOptions.Qwen2)
            with { DType = ScalarType.Float32, Sharded = sharded };
        var dir = TinyCheckpoint.Create(options);
        try
        {
            using var folder = ModelFolder.Open(dir);
            using var model = LlamaModel.FromCheckpoint(folder.Config, folder.Weights, CPU, ScalarType.Float32);
            var weights = folder.Weights.Names.ToDictionary(n => n, n => folder.Weights.Load(n));
            var tokens = folder.Tokenizer.Encode("the quick brown fox jumps", addBos: true).Select(i => (long)i).ToArray();
            var logits = model.Forward(tensor(tokens).unsqueeze(0))[0].to(ScalarType.Float64);
            var reference = ReferenceLlama.Logits(folder.Config, weights, tokens);
            double err = (logits - reference).abs().max().item<double>() / reference.abs().max().item<double>();
            Assert.True(err <= 1e-5, $"relative error {err:E3}");

            // Generation with the checkpoint's tokenizer and EOS ids runs end to end.
            using var gen = new Generator(model, ids => folder.Tokenizer.Decode(ids, skipSpecial: true));
            var result = gen.Generate(tokens.Select(t => (int)t).ToArray(), new GenerationOptions { MaxNewTokens = 5 }, cancellationToken: TestContext.Current.CancellationToken);
            Assert.InRange(result.TokenIds.Count, 1, 5);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
