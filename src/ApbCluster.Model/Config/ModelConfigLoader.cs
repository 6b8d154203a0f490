using System.Text.Json;

namespace ApbCluster.Model.Config;

/// <summary>Parses and validates a HF <c>config.json</c> of a Llama or Qwen2 checkpoint.</summary>
public static class ModelConfigLoader
{
    public static readonly IReadOnlyList<string> SupportedModelTypes = ["llama", "qwen2"];
    public static readonly IReadOnlyList<string> SupportedDtypes = ["bfloat16", "float16", "float32"];

    public static ModelConfig Load(string configPath)
    {
        using var json = JsonFile.Read(configPath);
        return Parse(json);
    }

    internal static ModelConfig Parse(JsonFile json)
    {
        var modelType = json.OptionalString("model_type") ?? throw json.Missing("model_type");
        if (!SupportedModelTypes.Contains(modelType))
            throw json.Invalid("model_type", $"'{modelType}' is not supported; supported values: {string.Join(", ", SupportedModelTypes)}.");

        int hidden = Positive(json, "hidden_size", json.RequiredInt("hidden_size"));
        int heads = Positive(json, "num_attention_heads", json.RequiredInt("num_attention_heads"));
        int kvHeads = Positive(json, "num_key_value_heads", json.OptionalInt("num_key_value_heads") ?? heads);
        if (heads % kvHeads != 0)
            throw json.Invalid("num_key_value_heads", $"num_attention_heads ({heads}) is not divisible by num_key_value_heads ({kvHeads}).");
        if (json.OptionalInt("head_dim") is null && hidden % heads != 0)
            throw json.Invalid("num_attention_heads", $"hidden_size ({hidden}) is not divisible by num_attention_heads ({heads}) and no head_dim is given.");

        var hiddenAct = json.OptionalString("hidden_act") ?? "silu";
        if (hiddenAct != "silu")
            throw json.Invalid("hidden_act", $"'{hiddenAct}' is not supported; only 'silu' is.");

        // Newer transformers write "dtype"; older ones "torch_dtype".
        var dtypeKey = json.Has("torch_dtype") ? "torch_dtype" : "dtype";
        var dtype = json.OptionalString(dtypeKey) ?? "bfloat16";
        if (!SupportedDtypes.Contains(dtype))
            throw json.Invalid(dtypeKey, $"'{dtype}' is not supported; supported values: {string.Join(", ", SupportedDtypes)}.");

        return new ModelConfig
        {
            ModelType = modelType,
            HiddenSize = hidden,
            IntermediateSize = Positive(json, "intermediate_size", json.RequiredInt("intermediate_size")),
            NumLayers = Positive(json, "num_hidden_layers", json.RequiredInt("num_hidden_layers")),
            NumHeads = heads,
            NumKvHeads = kvHeads,
            HeadDim = Positive(json, "head_dim", json.OptionalInt("head_dim") ?? hidden / heads),
            VocabSize = Positive(json, "vocab_size", json.RequiredInt("vocab_size")),
            RmsNormEps = PositiveReal(json, "rms_norm_eps", json.OptionalDouble("rms_norm_eps") ?? 1e-6),
            RopeTheta = RopeTheta(json),
            RopeScaling = ParseRopeScaling(json),
            MaxPositionEmbeddings = Positive(json, "max_position_embeddings", json.OptionalInt("max_position_embeddings") ?? 4096),
            TieWordEmbeddings = json.OptionalBool("tie_word_embeddings") ?? false,
            // Qwen2 always has q/k/v biases (its config usually omits the key); Llama only when asked.
            AttentionBias = json.OptionalBool("attention_bias") ?? modelType == "qwen2",
            HiddenAct = hiddenAct,
            TorchDtype = dtype,
            BosTokenId = json.OptionalInt("bos_token_id"),
            EosTokenIds = json.IntOrIntList("eos_token_id"),
        };
    }

    // transformers 5 writes RoPE settings as one "rope_parameters" object (rope_theta, rope_type and the
    // scaling factors together); older versions use top-level "rope_theta" and "rope_scaling".
    private const string RopeParameters = "rope_parameters";

    private static double RopeTheta(JsonFile json)
    {
        if (json.Get(RopeParameters) is { ValueKind: JsonValueKind.Object } rp && rp.TryGetProperty("rope_theta", out var t))
            return PositiveReal(json, RopeParameters + ".rope_theta", json.AsDouble(t, RopeParameters + ".rope_theta"));
        return PositiveReal(json, "rope_theta", json.OptionalDouble("rope_theta") ?? 10000.0);
    }

    private static RopeScaling? ParseRopeScaling(JsonFile json)
    {
        var key = json.Get("rope_scaling") is { ValueKind: JsonValueKind.Object } ? "rope_scaling" : RopeParameters;
        if (json.Get(key) is not { } rs) return null;
        if (rs.ValueKind == JsonValueKind.Null) return null;
        if (rs.ValueKind != JsonValueKind.Object) throw json.WrongType(key, "an object or null", rs);

        string? Str(string k) => rs.TryGetProperty(k, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
        var typeKey = Str("rope_type") != null ? "rope_type" : "type";
        var type = Str(typeKey);
        if (type is null or "default") return null;
        if (type != "llama3")
            throw json.Invalid($"{key}.{typeKey}", $"'{type}' is not supported; supported values: llama3, default (or null).");

        double Num(string k) => rs.TryGetProperty(k, out var v) && v.ValueKind != JsonValueKind.Null
            ? json.AsDouble(v, key + "." + k)
            : throw json.Missing(key + "." + k);
        var original = Num("original_max_position_embeddings");
        if (original <= 0 || original != Math.Floor(original))
            throw json.Invalid(key + ".original_max_position_embeddings", $"must be a positive integer, found {original}.");
        return new RopeScaling(
            "llama3",
            PositiveReal(json, key + ".factor", Num("factor")),
            PositiveReal(json, key + ".low_freq_factor", Num("low_freq_factor")),
            PositiveReal(json, key + ".high_freq_factor", Num("high_freq_factor")),
            (int)original);
    }

    private static int Positive(JsonFile json, string key, int value) =>
        value > 0 ? value : throw json.Invalid(key, $"must be positive, found {value}.");

    private static double PositiveReal(JsonFile json, string key, double value) =>
        value > 0 ? value : throw json.Invalid(key, $"must be positive, found {value}.");
}
