using ApbCluster.Model.Config;
using ApbCluster.Model.Layers;
using ApbCluster.NativeInterop;
using ApbCluster.Parallel.Tests.Reference;
using Xunit;
using static TorchSharp.torch;

namespace ApbCluster.Training.Tests;

/// <summary>
/// Locret's labels against plain loops over their definition: label[t, g] = max over every later position a
/// (context length C <= a < n) and every query head h of KV group g of q_a,h . k_t,g / sqrt(D), post-RoPE,
/// from a dense causal forward (the float64 reference model); features = [q_pre; k_pre; v] of token t.
/// </summary>
public class LocretTargetsTests
{
    private static ModelConfig Config(int kvHeads) => new()
    {
        ModelType = "llama", HiddenSize = 32, IntermediateSize = 64, NumLayers = 2,
        NumHeads = 8, NumKvHeads = kvHeads, HeadDim = 8, VocabSize = 61, RmsNormEps = 1e-5,
        MaxPositionEmbeddings = 64, TorchDtype = "float32", EosTokenIds = [],
    };

    [Theory]
    [InlineData(2, 19, 11, 1)] // GQA 4: the group's heads are 4g..4g+3
    [InlineData(4, 16, 15, 2)] // one later token
    [InlineData(1, 14, 3, 3)]  // every head in one group, many later tokens
    [InlineData(8, 12, 6, 4)]  // no grouping
    public void LabelsAndFeaturesEqualPlainLoops(int kvHeads, int n, int context, int seed)
    {
        TorchRuntime.EnsureLoaded("cpu");
        var config = Config(kvHeads);
        using var model = LlamaModel.CreateRandom(config, CPU, ScalarType.Float32, seed);
        var rng = new Random(seed);
        var ids = Enumerable.Range(0, n).Select(_ => (long)rng.Next(config.VocabSize)).ToArray();

        var targets = LocretTargets.Compute(model, ids, context);

        var m = new Fp64Llama(model);
        var positions = Enumerable.Range(0, n).Select(p => (long)p).ToArray();
        var causal = new bool[n, n];
        for (int i = 0; i < n; i++)
            for (int j = 0; j <= i; j++) causal[i, j] = true;
        var x = m.Embed(ids);
        int d = config.HeadDim, group = config.NumHeads / kvHeads;
        Assert.Equal(config.NumLayers, targets.Length);
        for (int layer = 0; layer < config.NumLayers; layer++)
        {
            var p = m.Project(layer, x, positions);
            var q = p.Q.data<double>().ToArray();   // [n, Hq, D] row-major
            var k = p.K.data<double>().ToArray();   // [n, Hkv, D]
            var labels = new double[context, kvHeads];
            for (int t = 0; t < context; t++)
                for (int g = 0; g < kvHeads; g++)
                {
                    double best = double.NegativeInfinity;
                    for (int a = context; a < n; a++)
                        for (int h = g * group; h < (g + 1) * group; h++)
                        {
                            double dot = 0;
                            for (int i = 0; i < d; i++) dot += q[(a * config.NumHeads + h) * d + i] * k[(t * kvHeads + g) * d + i];
                            best = Math.Max(best, dot / Math.Sqrt(d));
                        }
                    labels[t, g] = best;
                }
            var expectedFeatures = cat([p.QPre.reshape(n, -1), p.KPre.reshape(n, -1), p.V.reshape(n, -1)], 1).narrow(0, 0, context);
            ReferenceAssert.Close(targets[layer].Features, expectedFeatures, $"layer {layer} features");
            ReferenceAssert.Close(targets[layer].Labels, tensor(labels), $"layer {layer} labels");
            x = m.Finish(layer, x, m.Attend(p.Q, p.K, p.V, causal));
        }
    }
}
