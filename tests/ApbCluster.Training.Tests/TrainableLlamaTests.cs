using ApbCluster.Model.Layers;
using ApbCluster.Model.Loading;
using ApbCluster.Model.Tests.Support;
using ApbCluster.NativeInterop;
using ApbCluster.Training.Demo;
using Xunit;
using static TorchSharp.torch;

namespace ApbCluster.Training.Tests;

public class TrainableLlamaTests
{
    private static readonly DemoArchitecture Arch = DemoArchitecture.Tiny with { RopeTheta = 10_000 };

    /// <summary>Random weights large enough that every layer matters (the trained init is too small to test the maths).</summary>
    private static TrainableLlama RandomModel(bool tied = true)
    {
        TorchRuntime.EnsureLoaded("cpu");
        var config = (Arch with { TieEmbeddings = tied }).ToConfig(2530, 2528, 2529, "float32");
        var g = new Generator(17);
        var tensors = TrainableLlama.Shapes(config).ToDictionary(s => s.Name, s => s.Name.EndsWith("norm.weight")
            ? randn(s.Shape, generator: g) * 0.1 + 1
            : randn(s.Shape, generator: g) * (s.Name.Contains("embed") ? 1.0 : 1.0 / Math.Sqrt(s.Shape[^1])));
        return TrainableLlama.FromTensors(config, tensors, CPU);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void ExportedCheckpointLoadsWithEqualLogits(bool tied)
    {
        using var dir = new TempDir();
        _ = DemoTokenizerTests.Load(dir);
        using var trainable = RandomModel(tied);
        DemoModelFolder.WriteModel(dir.Path, trainable, ScalarType.Float32);

        using var folder = ModelFolder.Open(dir.Path);
        Assert.Equal("plain", folder.Template.Name);
        Assert.Equal(tied, folder.Config.TieWordEmbeddings);
        Assert.Equal(!tied, folder.Weights.Contains("lm_head.weight"));
        using var model = LlamaModel.FromCheckpoint(folder.Config, folder.Weights, CPU, ScalarType.Float32);
        var ids = randint(0, 2530, [2, 77], generator: new Generator(3));
        using var expected = model.Forward(ids);
        using var noGrad = no_grad();
        using var actual = trainable.Forward(ids, ScalarType.Float32);
        Assert.Equal(expected.shape, actual.shape);
        double diff = (expected - actual).abs().max().item<float>();
        Assert.True(diff < 1e-4, $"max |logit difference| {diff}");
        Assert.True(expected.std().item<float>() > 0.5); // the comparison is not between near-zero logits
    }

    [Fact]
    public void Bf16ExportLoadsAsBf16AndStaysClose()
    {
        using var dir = new TempDir();
        _ = DemoTokenizerTests.Load(dir);
        using var trainable = RandomModel();
        DemoModelFolder.WriteModel(dir.Path, trainable, ScalarType.BFloat16);
        using var folder = ModelFolder.Open(dir.Path);
        Assert.Equal("bfloat16", folder.Config.TorchDtype);
        Assert.Equal("BF16", folder.Weights.Info("model.embed_tokens.weight").DType);
        Assert.False(folder.Weights.Contains("lm_head.weight"));
        using var model = LlamaModel.FromCheckpoint(folder.Config, folder.Weights, CPU, ScalarType.Float32);
        var ids = randint(0, 2530, [1, 40], generator: new Generator(4));
        using var expected = model.Forward(ids);
        using var noGrad = no_grad();
        using var actual = trainable.Forward(ids, ScalarType.Float32);
        var rel = ((expected - actual).abs().max() / actual.abs().max()).item<float>();
        Assert.True(rel < 0.05, $"relative difference {rel}");
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void GradientsReachEveryParameter(bool tied)
    {
        using var model = RandomModel(tied);
        using var scope = NewDisposeScope();
        var ids = randint(0, 2530, [2, 33], generator: new Generator(5));
        model.Forward(ids, ScalarType.Float32).pow(2).mean().backward();
        Assert.Equal(TrainableLlama.Shapes(model.Config).Count(), model.Names.Count);
        foreach (var name in model.Names)
            Assert.True(model.Gradient(name)!.abs().sum().item<float>() > 0, $"{name} has a zero gradient");
    }

    [Fact]
    public void ClippingMatchesTorchClipGradNorm()
    {
        using var a = RandomModel();
        using var b = RandomModel();
        using var scope = NewDisposeScope();
        var ids = randint(0, 2530, [2, 20], generator: new Generator(6));
        foreach (var m in new[] { a, b }) m.Forward(ids, ScalarType.Float32).pow(2).mean().backward();
        double expected = nn.utils.clip_grad_norm_(a.Parameters, 0.5);
        double actual = DemoModelTrainer.ClipGradients(b, 0.5).item<float>();
        Assert.Equal(expected, actual, expected * 1e-5);
        Assert.True(expected > 0.5); // the clip did something
        Assert.True(a.Flat.grad!.allclose(b.Flat.grad!, 1e-5, 1e-8));
    }

    [Fact]
    public void FlatAdamWMatchesTorchAdamWWithDecayGroups()
    {
        TorchRuntime.EnsureLoaded("cpu");
        var g = new Generator(8);
        using var w = randn([3, 4], generator: g);   // decayed
        using var n = randn([5], generator: g);      // not decayed
        var pw = new TorchSharp.Modules.Parameter(w.clone(), requires_grad: true);
        var pn = new TorchSharp.Modules.Parameter(n.clone(), requires_grad: true);
        var flat = new TorchSharp.Modules.Parameter(cat([w.reshape(-1), n]).clone(), requires_grad: true);
        using var mask = cat([ones(12), zeros(5)]);
        using var reference = optim.AdamW([
            new TorchSharp.Modules.AdamW.ParamGroup([pw], 0.01, 0.9, 0.95, 1e-8, 0.1, false, false),
            new TorchSharp.Modules.AdamW.ParamGroup([pn], 0.01, 0.9, 0.95, 1e-8, 0.0, false, false),
        ], 0.01);
        using var ours = new FlatAdamW(flat, mask, 0.9, 0.95, 1e-8, 0.1);
        for (int step = 0; step < 4; step++)
        {
            using var scope = NewDisposeScope();
            using var target = randn([17], generator: g);
            reference.zero_grad();
            (cat([pw.reshape(-1), pn]) - target).pow(3).sum().backward();
            reference.step();
            ours.ZeroGrad();
            (flat - target).pow(3).sum().backward();
            ours.Step(0.01);
        }
        using var expected = cat([pw.detach().reshape(-1), pn.detach()]);
        Assert.True(flat.detach().allclose(expected, 1e-5, 1e-6), $"max difference {(flat.detach() - expected).abs().max().item<float>()}");
    }

    [Fact]
    public void FreshModelIsSeeded()
    {
        TorchRuntime.EnsureLoaded("cpu");
        var config = Arch.ToConfig(2530, 2528, 2529, "float32");
        using var a = TrainableLlama.Create(config, 9, CPU);
        using var b = TrainableLlama.Create(config, 9, CPU);
        using var c = TrainableLlama.Create(config, 10, CPU);
        using var scope = NewDisposeScope();
        Assert.Equal(DemoArchitecture.VocabRows(2530), (int)a.Weight("model.embed_tokens.weight").shape[0]);
        Assert.True(a.Flat.eq(b.Flat).all().item<bool>());
        Assert.False(a.Flat.eq(c.Flat).all().item<bool>());
        Assert.Equal(1f, a.Weight("model.norm.weight").mean().item<float>());
        Assert.Equal(a.ParameterCount, TrainableLlama.Shapes(config).Sum(s => s.Shape.Aggregate(1L, (x, y) => x * y)));
    }
}
