using System.Text.Json;
using ApbCluster.Model.Config;
using ApbCluster.Model.Loading;
using static TorchSharp.torch;

namespace ApbCluster.Training.Demo;

/// <summary>Writes the demo model as a Hugging Face folder the normal loader reads (ModelFolder.Open).</summary>
public static class DemoModelFolder
{
    public const string TrainingFileName = "training.json";

    /// <summary>tokenizer.json and tokenizer_config.json (written first: the data workers load the tokenizer from here).</summary>
    public static void WriteTokenizer(string dir, DemoTokenizer.Files tokenizer)
    {
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, DemoTokenizer.FileName), tokenizer.TokenizerJson);
        File.WriteAllText(Path.Combine(dir, DemoTokenizer.ConfigFileName), tokenizer.TokenizerConfigJson);
    }

    /// <summary>config.json, generation_config.json and model.safetensors (weights in <paramref name="dtype"/>).</summary>
    public static void WriteModel(string dir, TrainableLlama model, ScalarType dtype)
    {
        Directory.CreateDirectory(dir);
        var c = model.Config with { TorchDtype = DtypeName(dtype) };
        Write(dir, ModelConfig.FileName, ConfigJson(c));
        Write(dir, "generation_config.json", new Dictionary<string, object?>
        {
            ["bos_token_id"] = c.BosTokenId, ["eos_token_id"] = c.EosTokenIds[0], ["do_sample"] = false,
        });
        using var scope = NewDisposeScope();
        SafeTensorsWriter.Write(Path.Combine(dir, CheckpointWeights.SingleFileName), model.StateDict(dtype),
            new Dictionary<string, string> { ["format"] = "pt" });
    }

    public static void WriteTrainingRecord(string dir, object record) => Write(dir, TrainingFileName, record);

    /// <summary>HF LlamaConfig keys.</summary>
    public static Dictionary<string, object?> ConfigJson(ModelConfig c) => new()
    {
        ["architectures"] = new[] { "LlamaForCausalLM" },
        ["model_type"] = "llama",
        ["hidden_size"] = c.HiddenSize,
        ["intermediate_size"] = c.IntermediateSize,
        ["num_hidden_layers"] = c.NumLayers,
        ["num_attention_heads"] = c.NumHeads,
        ["num_key_value_heads"] = c.NumKvHeads,
        ["head_dim"] = c.HeadDim,
        ["vocab_size"] = c.VocabSize,
        ["rms_norm_eps"] = c.RmsNormEps,
        ["rope_theta"] = c.RopeTheta,
        ["rope_scaling"] = null,
        ["max_position_embeddings"] = c.MaxPositionEmbeddings,
        ["tie_word_embeddings"] = c.TieWordEmbeddings,
        ["hidden_act"] = "silu",
        ["attention_bias"] = false,
        ["mlp_bias"] = false,
        ["torch_dtype"] = c.TorchDtype,
        ["bos_token_id"] = c.BosTokenId,
        ["eos_token_id"] = c.EosTokenIds[0],
    };

    public static string DtypeName(ScalarType t) => t switch
    {
        ScalarType.BFloat16 => "bfloat16",
        ScalarType.Float16 => "float16",
        ScalarType.Float32 => "float32",
        _ => throw new ArgumentException($"cannot save weights as {t}: expected bfloat16, float16 or float32."),
    };

    /// <summary>The training record of an earlier run's folder, or null when it has none (a model trained elsewhere);
    /// a record that is not JSON is named in the error rather than silently dropped.</summary>
    public static System.Text.Json.Nodes.JsonNode? ReadTrainingRecord(string dir)
    {
        var path = Path.Combine(dir, TrainingFileName);
        if (!File.Exists(path)) return null;
        try { return System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path)); }
        catch (JsonException e) { throw new ArgumentException($"{path} is not valid JSON: {e.Message}"); }
    }

    private static void Write(string dir, string name, object value) =>
        File.WriteAllText(Path.Combine(dir, name), JsonSerializer.Serialize(value, DemoTokenizer.JsonOptions) + "\n");
}
