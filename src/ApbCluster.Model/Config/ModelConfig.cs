namespace ApbCluster.Model.Config;

/// <summary>The architecture of a Llama-family checkpoint, as read from its config.json.</summary>
public sealed partial record ModelConfig
{
    /// <summary>"llama" or "qwen2".</summary>
    public required string ModelType { get; init; }
    public required int HiddenSize { get; init; }
    public required int IntermediateSize { get; init; }
    public required int NumLayers { get; init; }
    public required int NumHeads { get; init; }
    public required int NumKvHeads { get; init; }
    public required int HeadDim { get; init; }
    public required int VocabSize { get; init; }
    public double RmsNormEps { get; init; } = 1e-6;
    public double RopeTheta { get; init; } = 10000.0;
    /// <summary>Llama 3.1's "llama3" scaling, or null for plain RoPE.</summary>
    public RopeScaling? RopeScaling { get; init; }
    public int MaxPositionEmbeddings { get; init; } = 4096;
    public bool TieWordEmbeddings { get; init; }
    /// <summary>q/k/v projections carry a bias (Qwen 2.x).</summary>
    public bool AttentionBias { get; init; }
    /// <summary>Activation of the MLP; only "silu" is supported.</summary>
    public string HiddenAct { get; init; } = "silu";
    /// <summary>Storage dtype of the weights: "bfloat16", "float16" or "float32".</summary>
    public string TorchDtype { get; init; } = "bfloat16";
    public int? BosTokenId { get; init; }
    /// <summary>All end-of-sequence ids (config.json's eos_token_id may be one id or a list).</summary>
    public IReadOnlyList<int> EosTokenIds { get; init; } = [];

    public int KvGroupSize => NumHeads / NumKvHeads;
}

/// <summary>rope_scaling of type "llama3" (Llama 3.1+): wavelength-dependent frequency scaling.</summary>
public sealed record RopeScaling(
    string RopeType,
    double Factor,
    double LowFreqFactor,
    double HighFreqFactor,
    int OriginalMaxPositionEmbeddings);
