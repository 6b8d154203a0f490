using System.Text.Json;
using ApbCluster.Model.Loading;
using ApbCluster.NativeInterop;
using TorchSharp;
using static TorchSharp.torch;

namespace ApbCluster.Model.Tests.Support;

/// <summary>
/// Writes a tiny random Llama or Qwen2 checkpoint in real HF layout (config.json,
/// model.safetensors or shards, tokenizer.json, tokenizer_config.json, generation_config.json)
/// into a folder, for tests of loading and of the model layers.
/// </summary>
public static class TinyCheckpoint
{
    // Folders made under the temp dir are removed when the test process exits (tests share them lazily).
    private static readonly List<string> Made = [];

    static TinyCheckpoint() => AppDomain.CurrentDomain.ProcessExit += (_, _) =>
    {
        lock (Made)
            foreach (var d in Made)
                try { Directory.Delete(d, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    };

    /// <summary>Creates the checkpoint and returns its folder.</summary>
    public static string Create(TinyCheckpointOptions? options = null)
    {
        var o = options ?? new TinyCheckpointOptions();
        if (o.ModelType is not ("llama" or "qwen2")) throw new ArgumentException($"model type {o.ModelType}");
        TorchRuntime.EnsureLoaded("cpu");
        var dir = o.Directory ?? Path.Combine(Path.GetTempPath(), "apb-tiny-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(dir);
        if (o.Directory is null) lock (Made) Made.Add(dir);

        bool qwen = o.ModelType == "qwen2";
        var (tokJson, specials, tokSize) = TinyTokenizerJson.Build(qwen ? TinyTokenizerJson.QwenSpecials : TinyTokenizerJson.LlamaSpecials, o.IgnoreMerges);
        if (o.VocabSize < tokSize) throw new ArgumentException($"VocabSize {o.VocabSize} is below the tokenizer's {tokSize} tokens.");
        File.WriteAllText(Path.Combine(dir, "tokenizer.json"), tokJson);

        int bos = qwen ? specials["<|endoftext|>"] : specials["<|begin_of_text|>"];
        int[] eos = qwen ? [specials["<|im_end|>"], specials["<|endoftext|>"]] : [specials["<|end_of_text|>"], specials["<|eot_id|>"]];
        WriteJson(dir, "config.json", ConfigJson(o, bos, eos[^1]));
        WriteJson(dir, "generation_config.json", new Dictionary<string, object> { ["bos_token_id"] = bos, ["eos_token_id"] = eos });
        WriteJson(dir, "tokenizer_config.json", new Dictionary<string, object?>
        {
            ["bos_token"] = qwen ? null : "<|begin_of_text|>",
            ["eos_token"] = qwen ? "<|im_end|>" : "<|end_of_text|>",
            ["model_max_length"] = 4096,
        });

        var tensors = RandomWeights(o);
        try
        {
            if (o.Sharded) SafeTensorsWriter.WriteSharded(dir, tensors, o.MaxShardBytes);
            else SafeTensorsWriter.Write(Path.Combine(dir, "model.safetensors"), tensors, new Dictionary<string, string> { ["format"] = "pt" });
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
        return dir;
    }

    /// <summary>Every tensor name and shape of a HF Llama/Qwen2 checkpoint with these options.</summary>
    public static IReadOnlyDictionary<string, long[]> TensorShapes(TinyCheckpointOptions o)
    {
        int headDim = o.Hidden / o.Heads;
        long q = o.Heads * headDim, kv = o.KvHeads * headDim;
        var shapes = new Dictionary<string, long[]> { ["model.embed_tokens.weight"] = [o.VocabSize, o.Hidden] };
        for (int i = 0; i < o.Layers; i++)
        {
            var p = $"model.layers.{i}.";
            shapes[p + "input_layernorm.weight"] = [o.Hidden];
            shapes[p + "self_attn.q_proj.weight"] = [q, o.Hidden];
            shapes[p + "self_attn.k_proj.weight"] = [kv, o.Hidden];
            shapes[p + "self_attn.v_proj.weight"] = [kv, o.Hidden];
            shapes[p + "self_attn.o_proj.weight"] = [o.Hidden, q];
            if (o.ModelType == "qwen2")
            {
                shapes[p + "self_attn.q_proj.bias"] = [q];
                shapes[p + "self_attn.k_proj.bias"] = [kv];
                shapes[p + "self_attn.v_proj.bias"] = [kv];
            }
            shapes[p + "post_attention_layernorm.weight"] = [o.Hidden];
            shapes[p + "mlp.gate_proj.weight"] = [o.Intermediate, o.Hidden];
            shapes[p + "mlp.up_proj.weight"] = [o.Intermediate, o.Hidden];
            shapes[p + "mlp.down_proj.weight"] = [o.Hidden, o.Intermediate];
        }
        shapes["model.norm.weight"] = [o.Hidden];
        if (!o.TieEmbeddings) shapes["lm_head.weight"] = [o.VocabSize, o.Hidden];
        return shapes;
    }

    private static Dictionary<string, Tensor> RandomWeights(TinyCheckpointOptions o)
    {
        var gen = new Generator(o.Seed);
        var result = new Dictionary<string, Tensor>();
        foreach (var (name, shape) in TensorShapes(o))
        {
            using var noise = torch.randn(shape, ScalarType.Float32, generator: gen);
            // Norm weights sit near 1 as in trained models; everything else is small.
            using var values = name.EndsWith("norm.weight") ? noise * 0.02 + 1.0 : noise * 0.02;
            result[name] = values.to(o.DType);
        }
        return result;
    }

    private static Dictionary<string, object?> ConfigJson(TinyCheckpointOptions o, int bos, int eos)
    {
        var c = new Dictionary<string, object?>
        {
            ["architectures"] = new[] { o.ModelType == "qwen2" ? "Qwen2ForCausalLM" : "LlamaForCausalLM" },
            ["model_type"] = o.ModelType,
            ["hidden_size"] = o.Hidden,
            ["intermediate_size"] = o.Intermediate,
            ["num_hidden_layers"] = o.Layers,
            ["num_attention_heads"] = o.Heads,
            ["num_key_value_heads"] = o.KvHeads,
            ["vocab_size"] = o.VocabSize,
            ["rms_norm_eps"] = 1e-5,
            ["rope_theta"] = o.ModelType == "qwen2" ? 1000000.0 : 500000.0,
            ["max_position_embeddings"] = 2048,
            ["tie_word_embeddings"] = o.TieEmbeddings,
            ["hidden_act"] = "silu",
            ["torch_dtype"] = DTypeName(o.DType),
            ["bos_token_id"] = bos,
            ["eos_token_id"] = eos,
            ["rope_scaling"] = o.Llama3RopeScaling
                ? new Dictionary<string, object>
                {
                    ["rope_type"] = "llama3", ["factor"] = 8.0, ["low_freq_factor"] = 1.0,
                    ["high_freq_factor"] = 4.0, ["original_max_position_embeddings"] = 256,
                }
                : null,
        };
        if (o.ModelType == "llama") c["attention_bias"] = false;
        return c;
    }

    public static string DTypeName(ScalarType t) => t switch
    {
        ScalarType.BFloat16 => "bfloat16",
        ScalarType.Float16 => "float16",
        ScalarType.Float32 => "float32",
        _ => throw new ArgumentException($"dtype {t}"),
    };

    private static void WriteJson(string dir, string name, object value) =>
        File.WriteAllText(Path.Combine(dir, name), JsonSerializer.Serialize(value, new JsonSerializerOptions { WriteIndented = true }));
}
