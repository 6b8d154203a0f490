using ApbCluster.Model.Config;
using ApbCluster.Model.Layers;
using ApbCluster.NativeInterop;
using ApbCluster.Parallel.Phase2;
using ApbCluster.Parallel.Plan;
using ApbCluster.Parallel.Strategies;
using Xunit;
using static TorchSharp.torch;

namespace ApbCluster.Parallel.Tests.Strategies;

/// <summary>A tiny random fp32 model on the CPU and the dense reference for it.</summary>
internal static class StrategyFixture
{
    public const double Tol = 1e-5;

    public static ModelConfig Config(int kvHeads) => new()
    {
        ModelType = "llama", HiddenSize = 32, IntermediateSize = 64, NumLayers = 2,
        NumHeads = 8, NumKvHeads = kvHeads, HeadDim = 8, VocabSize = 61, RmsNormEps = 1e-5,
        MaxPositionEmbeddings = 512, TorchDtype = "float32", EosTokenIds = [],
    };

    public static LlamaModel TinyModel(int kvHeads, long seed = 1)
    {
        TorchRuntime.EnsureLoaded("cpu");
        return LlamaModel.CreateRandom(Config(kvHeads), CPU, ScalarType.Float32, seed);
    }

    public static long[] Tokens(Random rng, int n, int vocab) => Enumerable.Range(0, n).Select(_ => (long)rng.Next(3, vocab)).ToArray();

    /// <summary>Dense final hidden states of the document, [1, n, hidden].</summary>
    public static Tensor DenseHidden(LlamaModel model, long[] document)
    {
        using var _ = no_grad();
        return model.ForwardHidden(tensor(document, dtype: ScalarType.Int64).reshape(1, -1));
    }

    /// <summary>Dense greedy generation after document + question, with the model's own KV cache.</summary>
    public static long[] DenseGreedy(LlamaModel model, long[] document, long[] question, int steps)
    {
        using var cache = model.CreateCache(1, document.Length + question.Length + steps);
        var prompt = document.Concat(question).ToArray();
        var tokens = new List<long>();
        var logits = model.Forward(tensor(prompt, dtype: ScalarType.Int64).reshape(1, -1), cache, lastPositionOnly: true);
        for (int i = 0; i < steps; i++)
        {
            long next = logits[0, -1].argmax().item<long>();
            tokens.Add(next);
            logits = model.Forward(tensor(new[] { next }, dtype: ScalarType.Int64).reshape(1, 1), cache, lastPositionOnly: true);
        }
        return tokens.ToArray();
    }

    /// <summary>Every host's shard hidden states equal the dense ones at the shard's positions.</summary>
    public static void AssertShardsMatchDense(Tensor dense, IEnumerable<HostShard> shards, int n)
    {
        var covered = new List<long>();
        foreach (var s in shards.Where(s => s.Length > 0)) // a block of pure padding keeps nothing
        {
            var expected = dense.index_select(1, tensor(s.Positions, dtype: ScalarType.Int64));
            var diff = (s.Hidden! - expected).abs().max().item<float>();
            Assert.True(s.Hidden!.allclose(expected, rtol: Tol, atol: Tol), $"host {s.Host}: max |diff| = {diff}");
            covered.AddRange(s.Positions);
        }
        Assert.Equal(Enumerable.Range(0, n).Select(x => (long)x), covered.Order());
    }

    public static (HostShard Shard, Phase2Result Result)[] Run(LlamaModel model, ApbPlan plan, PrefillStrategy strategy,
        long[] document, long[] question, int steps, Kernels.CritiPrefillOptions? critiPrefill = null) =>
        ParallelRun.InProcess(model, plan, strategy, new PrefillRequest(document, question) { KeepHidden = true, CritiPrefill = critiPrefill },
            new Phase2Options { MaxNewTokens = steps }, TimeSpan.FromMinutes(2));
}
