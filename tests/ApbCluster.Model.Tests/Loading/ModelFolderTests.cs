using ApbCluster.Model.Loading;
using ApbCluster.Model.Tests.Support;
using ApbCluster.Model.Tokenization;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace ApbCluster.Model.Tests.Loading;

public class ModelFolderTests
{
    [Fact]
    public void TinyLlamaLoadsConfigTensorsAndTokenizer()
    {
        using var tmp = new TempDir();
        var opts = TinyCheckpointOptions.Llama with { Directory = tmp.Path, Llama3RopeScaling = true };
        TinyCheckpoint.Create(opts);
        using var model = ModelFolder.Open(tmp.Path);

        var c = model.Config;
        Assert.Equal("llama", c.ModelType);
        Assert.Equal((64, 128, 2, 4, 2, 16, 320), (c.HiddenSize, c.IntermediateSize, c.NumLayers, c.NumHeads, c.NumKvHeads, c.HeadDim, c.VocabSize));
        Assert.False(c.AttentionBias);
        Assert.False(c.TieWordEmbeddings);
        Assert.Equal(500000.0, c.RopeTheta);
        Assert.Equal(1e-5, c.RmsNormEps);
        Assert.Equal("bfloat16", c.TorchDtype);
        Assert.Equal(new ApbCluster.Model.Config.RopeScaling("llama3", 8.0, 1.0, 4.0, 256), c.RopeScaling);

        AssertAllTensorsLoad(model.Weights, opts);
        Assert.Equal(256 + TinyTokenizerJson.Merges.Length + 5, model.Tokenizer.VocabSize);
        Assert.Equal(model.Tokenizer.TokenId("<|begin_of_text|>"), model.Tokenizer.BosId);
        Assert.Contains(model.Tokenizer.TokenId("<|eot_id|>")!.Value, model.Tokenizer.EosIds);
        Assert.Contains(model.Tokenizer.TokenId("<|end_of_text|>")!.Value, model.Tokenizer.EosIds);
        Assert.IsType<Llama3ChatTemplate>(model.Template);
    }

    [Fact]
    public void TinyQwen2LoadsWithBiasesAndTiedEmbeddings()
    {
        using var tmp = new TempDir();
        var opts = TinyCheckpointOptions.Qwen2 with { Directory = tmp.Path, DType = ScalarType.Float16 };
        TinyCheckpoint.Create(opts);
        using var model = ModelFolder.Open(tmp.Path);

        Assert.Equal("qwen2", model.Config.ModelType);
        Assert.True(model.Config.AttentionBias);
        Assert.True(model.Config.TieWordEmbeddings);
        Assert.Null(model.Config.RopeScaling);
        Assert.Equal("float16", model.Config.TorchDtype);
        Assert.True(model.Weights.Contains("model.layers.1.self_attn.k_proj.bias"));
        Assert.False(model.Weights.Contains("lm_head.weight"));
        AssertAllTensorsLoad(model.Weights, opts);

        Assert.Null(model.Tokenizer.BosId); // Qwen 2 has no BOS, whatever config.json says
        Assert.Equal(model.Tokenizer.TokenId("<|im_end|>"), model.Tokenizer.EosIds[0]);
        Assert.IsType<Qwen2ChatTemplate>(model.Template);
    }

    [Fact]
    public void ShardedCheckpointEqualsSingleFile()
    {
        using var single = new TempDir();
        using var sharded = new TempDir();
        TinyCheckpoint.Create(TinyCheckpointOptions.Llama with { Directory = single.Path });
        TinyCheckpoint.Create(TinyCheckpointOptions.Llama with { Directory = sharded.Path, Sharded = true, MaxShardBytes = 20_000 });

        Assert.False(File.Exists(Path.Combine(sharded.Path, CheckpointWeights.SingleFileName)));
        using var a = CheckpointWeights.Open(single.Path);
        using var b = CheckpointWeights.Open(sharded.Path);
        Assert.Single(a.Files);
        Assert.True(b.Files.Count > 2, $"expected several shards, got {b.Files.Count}");
        Assert.Equal(a.Names.Order(), b.Names.Order());
        foreach (var name in a.Names)
        {
            using var x = a.Load(name);
            using var y = b.Load(name);
            Assert.Equal(x.dtype, y.dtype);
            Assert.True(x.eq(y).all().item<bool>(), name);
        }
    }

    [Fact]
    public void ModelFolderRejectsTokenizerLargerThanVocab()
    {
        using var tmp = new TempDir();
        TinyCheckpoint.Create(TinyCheckpointOptions.Llama with { Directory = tmp.Path });
        var cfg = Path.Combine(tmp.Path, "config.json");
        File.WriteAllText(cfg, File.ReadAllText(cfg).Replace("\"vocab_size\": 320", "\"vocab_size\": 100"));
        var e = Assert.Throws<ModelLoadException>(() => ModelFolder.Open(tmp.Path));
        Assert.Contains(cfg, e.Message);
        Assert.Contains("vocab_size", e.Message);
    }

    private static void AssertAllTensorsLoad(CheckpointWeights w, TinyCheckpointOptions opts)
    {
        var shapes = TinyCheckpoint.TensorShapes(opts);
        Assert.Equal(shapes.Keys.Order(), w.Names.Order());
        foreach (var (name, shape) in shapes)
        {
            using var t = w.Load(name, shape, ScalarType.Float32, CPU);
            Assert.Equal(shape, t.shape);
            Assert.Equal(ScalarType.Float32, t.dtype);
            if (name.EndsWith("norm.weight"))
                Assert.InRange(t.mean().item<float>(), 0.95f, 1.05f);
            else
                Assert.InRange(t.std().item<float>(), 0.005f, 0.05f);
        }
    }
}
