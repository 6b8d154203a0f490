using ApbCluster.Model.Config;
using ApbCluster.Model.Loading;
using ApbCluster.Model.Tests.Support;
using ApbCluster.NativeInterop;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace ApbCluster.Model.Tests.Loading;

/// <summary>Each bad input gives a <see cref="ModelLoadException"/> naming the file and the key or tensor.</summary>
public class LoadErrorTests
{
    public LoadErrorTests() => TorchRuntime.EnsureLoaded("cpu");

    private static string TinyLlama(TempDir tmp) => TinyCheckpoint.Create(TinyCheckpointOptions.Llama with { Directory = tmp.Path });

    private static void EditConfig(string dir, string from, string to)
    {
        var path = Path.Combine(dir, "config.json");
        var text = File.ReadAllText(path);
        Assert.Contains(from, text);
        File.WriteAllText(path, text.Replace(from, to));
    }

    private static ModelLoadException Fails(Action action, params string[] mustMention)
    {
        var e = Assert.Throws<ModelLoadException>(action);
        foreach (var s in mustMention) Assert.Contains(s, e.Message);
        return e;
    }

    [Fact]
    public void MissingConfig()
    {
        using var tmp = new TempDir();
        Fails(() => ModelConfig.Load(tmp.Path), Path.Combine(tmp.Path, "config.json"), "not found");
    }

    [Fact]
    public void CorruptConfigReportsJsonPosition()
    {
        using var tmp = new TempDir();
        File.WriteAllText(tmp.File("config.json"), "{\n  \"model_type\": \"llama\",\n  \"hidden_size\": 64 oops\n}");
        Fails(() => ModelConfig.Load(tmp.Path), tmp.File("config.json"), "invalid JSON", "line 3");
    }

    [Fact]
    public void UnknownModelType()
    {
        using var tmp = new TempDir();
        TinyLlama(tmp);
        EditConfig(tmp.Path, "\"model_type\": \"llama\"", "\"model_type\": \"mistral\"");
        Fails(() => ModelFolder.Open(tmp.Path), tmp.File("config.json"), "model_type", "mistral", "llama, qwen2");
    }

    [Fact]
    public void MissingRequiredKey()
    {
        using var tmp = new TempDir();
        TinyLlama(tmp);
        EditConfig(tmp.Path, "\"num_hidden_layers\"", "\"num_layers_renamed\"");
        Fails(() => ModelConfig.Load(tmp.Path), tmp.File("config.json"), "num_hidden_layers", "missing");
    }

    [Fact]
    public void HeadsNotDivisibleByKvHeads()
    {
        using var tmp = new TempDir();
        TinyLlama(tmp);
        EditConfig(tmp.Path, "\"num_key_value_heads\": 2", "\"num_key_value_heads\": 3");
        Fails(() => ModelConfig.Load(tmp.Path), tmp.File("config.json"), "num_key_value_heads", "divisible");
    }

    [Fact]
    public void NonPositiveSize()
    {
        using var tmp = new TempDir();
        TinyLlama(tmp);
        EditConfig(tmp.Path, "\"intermediate_size\": 128", "\"intermediate_size\": 0");
        Fails(() => ModelConfig.Load(tmp.Path), tmp.File("config.json"), "intermediate_size", "positive");
    }

    [Fact]
    public void UnsupportedRopeScaling()
    {
        using var tmp = new TempDir();
        TinyCheckpoint.Create(TinyCheckpointOptions.Llama with { Directory = tmp.Path, Llama3RopeScaling = true });
        EditConfig(tmp.Path, "\"rope_type\": \"llama3\"", "\"rope_type\": \"yarn\"");
        Fails(() => ModelConfig.Load(tmp.Path), tmp.File("config.json"), "rope_scaling.rope_type", "yarn");
    }

    [Fact]
    public void Transformers5RopeParametersAreRead()
    {
        // transformers 5 writes rope_theta and the llama3 scaling inside one "rope_parameters" object.
        using var tmp = new TempDir();
        File.WriteAllText(tmp.File("config.json"), """
            {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1,
             "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 300, "dtype": "bfloat16",
             "rope_parameters": {"rope_theta": 500000.0, "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                 "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}
            """);
        var c = ModelConfig.Load(tmp.Path);
        Assert.Equal(500000.0, c.RopeTheta);
        Assert.Equal(new RopeScaling("llama3", 8.0, 1.0, 4.0, 8192), c.RopeScaling);

        File.WriteAllText(tmp.File("config.json"), """
            {"model_type": "qwen2", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1,
             "num_attention_heads": 4, "vocab_size": 300, "rope_parameters": {"rope_theta": 1000000.0, "rope_type": "default"}}
            """);
        c = ModelConfig.Load(tmp.Path);
        Assert.Equal(1000000.0, c.RopeTheta);
        Assert.Null(c.RopeScaling);
    }

    [Fact]
    public void ConfigDefaultsFollowHf()
    {
        using var tmp = new TempDir();
        File.WriteAllText(tmp.File("config.json"), """
            {"model_type": "qwen2", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1,
             "num_attention_heads": 4, "vocab_size": 300, "dtype": "float32", "eos_token_id": [5, 6],
             "rope_scaling": {"type": "default"}}
            """);
        var c = ModelConfig.Load(tmp.Path);
        Assert.Equal(4, c.NumKvHeads);       // defaults to the head count
        Assert.Equal(16, c.HeadDim);         // hidden / heads
        Assert.True(c.AttentionBias);        // Qwen 2 default
        Assert.Equal("float32", c.TorchDtype);
        Assert.Equal([5, 6], c.EosTokenIds);
        Assert.Null(c.RopeScaling);
    }

    [Fact]
    public void HeaderLengthBeyondFile()
    {
        using var tmp = new TempDir();
        var path = tmp.File("model.safetensors");
        RawSafeTensors.Write(path, "{}", 0, claimedHeaderLength: 1_000_000);
        Fails(() => SafeTensorsFile.Open(path), path, "header length 1000000", "past the end");
    }

    [Fact]
    public void HeaderInvalidJson()
    {
        using var tmp = new TempDir();
        var path = tmp.File("model.safetensors");
        RawSafeTensors.Write(path, "{\"w\": {\"dtype\": ", 0);
        Fails(() => SafeTensorsFile.Open(path), path, "invalid JSON");
    }

    [Fact]
    public void DataOffsetsBeyondFile()
    {
        using var tmp = new TempDir();
        var path = tmp.File("model.safetensors");
        RawSafeTensors.Write(path, """{"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}""", dataBytes: 8);
        Fails(() => SafeTensorsFile.Open(path), path, "'w'", "data_offsets [0, 16]", "8 bytes");
    }

    [Fact]
    public void DataOffsetsNotMatchingShape()
    {
        using var tmp = new TempDir();
        var path = tmp.File("model.safetensors");
        RawSafeTensors.Write(path, """{"w": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 8]}}""", dataBytes: 16);
        Fails(() => SafeTensorsFile.Open(path), path, "'w'", "header says 8 bytes", "needs 12");
    }

    [Theory]
    [InlineData("I8", 1)]
    [InlineData("F64", 8)]
    public void UnsupportedDtype(string dtype, int size)
    {
        using var tmp = new TempDir();
        var path = tmp.File("model.safetensors");
        RawSafeTensors.Write(path, $$$"""{"w": {"dtype": "{{{dtype}}}", "shape": [2], "data_offsets": [0, {{{2 * size}}}]}}""", dataBytes: 2 * size);
        using var f = SafeTensorsFile.Open(path);
        Fails(() => f.Load("w"), path, "'w'", dtype, "BF16, F16, F32");
    }

    [Fact]
    public void UnknownDtypeInHeader()
    {
        using var tmp = new TempDir();
        var path = tmp.File("model.safetensors");
        RawSafeTensors.Write(path, """{"w": {"dtype": "Q4", "shape": [2], "data_offsets": [0, 2]}}""", dataBytes: 2);
        Fails(() => SafeTensorsFile.Open(path), path, "'w'", "Q4");
    }

    [Fact]
    public void MissingTensorNamesKeyAndFolder()
    {
        using var tmp = new TempDir();
        TinyLlama(tmp);
        using var w = CheckpointWeights.Open(tmp.Path);
        Fails(() => w.Load("model.layers.7.mlp.up_proj.weight", [128, 64], ScalarType.Float32, CPU),
            tmp.Path, "model.layers.7.mlp.up_proj.weight");
    }

    [Fact]
    public void ShapeMismatchNamesFileKeyAndBothShapes()
    {
        using var tmp = new TempDir();
        TinyLlama(tmp);
        using var w = CheckpointWeights.Open(tmp.Path);
        Fails(() => w.Load("model.layers.0.mlp.up_proj.weight", [64, 128], ScalarType.Float32, CPU),
            tmp.File("model.safetensors"), "model.layers.0.mlp.up_proj.weight", "[128, 64]", "[64, 128]");
    }

    [Fact]
    public void NoWeightFiles()
    {
        using var tmp = new TempDir();
        Fails(() => CheckpointWeights.Open(tmp.Path), tmp.Path, "model.safetensors.index.json", "model.safetensors");
    }

    [Fact]
    public void IndexPointsToMissingShard()
    {
        using var tmp = new TempDir();
        TinyCheckpoint.Create(TinyCheckpointOptions.Llama with { Directory = tmp.Path, Sharded = true, MaxShardBytes = 20_000 });
        var shard = Directory.GetFiles(tmp.Path, "model-00002-*.safetensors").Single();
        File.Delete(shard);
        Fails(() => CheckpointWeights.Open(tmp.Path), tmp.File("model.safetensors.index.json"), "weight_map.", shard);
    }

    [Fact]
    public void MissingTokenizer()
    {
        using var tmp = new TempDir();
        TinyLlama(tmp);
        File.Delete(tmp.File("tokenizer.json"));
        Fails(() => ModelFolder.Open(tmp.Path), tmp.Path, "tokenizer.json", "tokenizer.model");
    }

    [Fact]
    public void CorruptTokenizerJson()
    {
        using var tmp = new TempDir();
        TinyLlama(tmp);
        File.WriteAllText(tmp.File("tokenizer.json"), """{"model": {"type": "BPE", "vocab": {}}, "pre_tokenizer": {"type": "ByteLevel"}}""");
        Fails(() => ModelFolder.Open(tmp.Path), tmp.File("tokenizer.json"), "model.merges");
    }
}
