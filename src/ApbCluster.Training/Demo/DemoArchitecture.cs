using ApbCluster.Model.Config;

namespace ApbCluster.Training.Demo;

/// <summary>
/// The demo model's Llama architecture (GQA, RoPE, RMSNorm, SwiGLU, tied embeddings). <see cref="Demo"/> is the
/// committed model's (about 3.7 M parameters, 7 MB in bf16); <see cref="Tiny"/> is for CPU tests.
/// </summary>
public sealed record DemoArchitecture
{
    public int Hidden { get; init; } = 256;
    public int Layers { get; init; } = 4;
    public int Heads { get; init; } = 8;
    public int KvHeads { get; init; } = 2;
    public int HeadDim { get; init; } = 32;
    public int Intermediate { get; init; } = 768;
    /// <summary>Large, as Llama 3's: many slow RoPE channels, which content matching over 16K tokens uses.</summary>
    public double RopeTheta { get; init; } = 500_000;
    public int MaxPositions { get; init; } = 32_768;
    public double RmsNormEps { get; init; } = 1e-5;
    /// <summary>lm_head shares the embedding table (the shipped model) or has its own (Llama 3 8B's choice; the
    /// 26 tied single-capital embeddings collapsed in the shipped model, docs/training.md).</summary>
    public bool TieEmbeddings { get; init; } = true;

    public static readonly DemoArchitecture Demo = new();

    public static readonly DemoArchitecture Tiny = new()
    {
        Hidden = 64, Layers = 2, Heads = 4, KvHeads = 2, HeadDim = 16, Intermediate = 128, MaxPositions = 4096,
    };

    public static DemoArchitecture Named(string name) => name.ToLowerInvariant() switch
    {
        "demo" => Demo,
        "tiny" => Tiny,
        _ => throw new ArgumentException($"unknown model size '{name}': expected demo or tiny."),
    };

    /// <summary>The embedding table's rows: the tokenizer's size rounded up to a multiple of 64.</summary>
    public static int VocabRows(int tokenizerSize) => (tokenizerSize + 63) / 64 * 64;

    public ModelConfig ToConfig(int tokenizerSize, int bosId, int eosId, string torchDtype) => new()
    {
        ModelType = "llama",
        HiddenSize = Hidden,
        IntermediateSize = Intermediate,
        NumLayers = Layers,
        NumHeads = Heads,
        NumKvHeads = KvHeads,
        HeadDim = HeadDim,
        VocabSize = VocabRows(tokenizerSize),
        RmsNormEps = RmsNormEps,
        RopeTheta = RopeTheta,
        MaxPositionEmbeddings = MaxPositions,
        TieWordEmbeddings = TieEmbeddings,
        TorchDtype = torchDtype,
        BosTokenId = bosId,
        EosTokenIds = [eosId],
    };

    /// <summary>Checks the shape makes sense (heads divide, RoPE needs an even head dim).</summary>
    public void Validate()
    {
        if (Hidden < 1 || Layers < 1 || Heads < 1 || KvHeads < 1 || HeadDim < 2 || Intermediate < 1)
            throw new ArgumentException("every architecture size must be positive.");
        if (Heads % KvHeads != 0) throw new ArgumentException($"heads ({Heads}) must be a multiple of kv heads ({KvHeads}).");
        if (HeadDim % 2 != 0) throw new ArgumentException($"head dim ({HeadDim}) must be even (RoPE rotates halves).");
    }
}
