namespace ApbCluster.Model.Config;

/// <summary>
/// Architectures of real models by name, for benchmarks with random weights (prefill and decode
/// time do not depend on the weights' values) and for tests at small sizes.
/// </summary>
public static class ModelShapes
{
    private static readonly RopeScaling Llama31Rope = new("llama3", 8.0, 1.0, 4.0, 8192);

    private static readonly Dictionary<string, ModelConfig> Known = new(StringComparer.OrdinalIgnoreCase)
    {
        ["llama-3.1-8b"] = new()
        {
            ModelType = "llama", HiddenSize = 4096, IntermediateSize = 14336, NumLayers = 32, NumHeads = 32,
            NumKvHeads = 8, HeadDim = 128, VocabSize = 128256, RmsNormEps = 1e-5, RopeTheta = 500000,
            RopeScaling = Llama31Rope, MaxPositionEmbeddings = 131072, TorchDtype = "bfloat16",
            BosTokenId = 128000, EosTokenIds = [128001, 128008, 128009],
        },
        ["llama-3.2-1b"] = new()
        {
            ModelType = "llama", HiddenSize = 2048, IntermediateSize = 8192, NumLayers = 16, NumHeads = 32,
            NumKvHeads = 8, HeadDim = 64, VocabSize = 128256, RmsNormEps = 1e-5, RopeTheta = 500000,
            RopeScaling = new("llama3", 32.0, 1.0, 4.0, 8192), MaxPositionEmbeddings = 131072,
            TieWordEmbeddings = true, TorchDtype = "bfloat16", BosTokenId = 128000, EosTokenIds = [128001, 128008, 128009],
        },
        ["qwen-2.5-14b"] = new()
        {
            ModelType = "qwen2", HiddenSize = 5120, IntermediateSize = 13824, NumLayers = 48, NumHeads = 40,
            NumKvHeads = 8, HeadDim = 128, VocabSize = 152064, RmsNormEps = 1e-6, RopeTheta = 1000000,
            AttentionBias = true, MaxPositionEmbeddings = 131072, TorchDtype = "bfloat16", EosTokenIds = [151643, 151645],
        },
        ["qwen-2.5-7b"] = new()
        {
            ModelType = "qwen2", HiddenSize = 3584, IntermediateSize = 18944, NumLayers = 28, NumHeads = 28,
            NumKvHeads = 4, HeadDim = 128, VocabSize = 152064, RmsNormEps = 1e-6, RopeTheta = 1000000,
            AttentionBias = true, MaxPositionEmbeddings = 131072, TorchDtype = "bfloat16", EosTokenIds = [151643, 151645],
        },
        // Small enough for a 2-core CPU: the embedded default and CI.
        ["tiny"] = new()
        {
            ModelType = "llama", HiddenSize = 128, IntermediateSize = 256, NumLayers = 4, NumHeads = 8,
            NumKvHeads = 2, HeadDim = 16, VocabSize = 512, RmsNormEps = 1e-5, RopeTheta = 10000,
            MaxPositionEmbeddings = 65536, TorchDtype = "float32", BosTokenId = 1, EosTokenIds = [2],
        },
    };

    public static IReadOnlyCollection<string> Names => Known.Keys;

    public static ModelConfig Get(string name) =>
        Known.TryGetValue(name, out var c)
            ? c
            : throw new ArgumentException($"unknown model shape '{name}'; known shapes: {string.Join(", ", Known.Keys)}");
}
