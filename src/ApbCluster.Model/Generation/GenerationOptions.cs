namespace ApbCluster.Model.Generation;

/// <summary>How to generate. Temperature 0 means greedy (argmax); otherwise temperature + top-p sampling.</summary>
public sealed record GenerationOptions
{
    public int MaxNewTokens { get; init; } = 256;
    public double Temperature { get; init; }
    /// <summary>Nucleus sampling: keep the most probable tokens whose cumulative probability reaches TopP (1 = all).</summary>
    public double TopP { get; init; } = 1.0;
    public long Seed { get; init; }
    /// <summary>End-of-sequence ids; null uses the model config's eos_token_id list.</summary>
    public IReadOnlyList<int>? EosTokenIds { get; init; }
    /// <summary>Generation stops when the decoded text contains one of these; the text is cut before it.</summary>
    public IReadOnlyList<string> StopStrings { get; init; } = [];

    public bool Greedy => Temperature <= 0;
}

/// <summary>Why generation ended.</summary>
public static class FinishReason
{
    /// <summary>A stop string appeared in the text.</summary>
    public const string Stop = "stop";
    /// <summary>MaxNewTokens were generated.</summary>
    public const string Length = "length";
    /// <summary>An end-of-sequence token was generated.</summary>
    public const string Eos = "eos";
}

/// <summary>One streamed token: its id, the text it adds (may be empty while a multi-byte character or a
/// possible stop string is held back), its index among the generated tokens, and the finish reason on the last one.</summary>
public sealed record GeneratedToken(int TokenId, string Text, int Index, string? FinishReason);

/// <summary>The outcome of one generation. PrefillMs includes sampling the first token; DecodeMs covers the rest.</summary>
public sealed record GenerationResult(
    IReadOnlyList<int> PromptTokenIds,
    IReadOnlyList<int> TokenIds,
    string Text,
    string FinishReason,
    double PrefillMs,
    double DecodeMs)
{
    /// <summary>Decode steps per second (tokens after the first, which prefill produced).</summary>
    public double TokensPerSecond => TokenIds.Count > 1 && DecodeMs > 0 ? (TokenIds.Count - 1) / (DecodeMs / 1000.0) : 0;
}
