using static TorchSharp.torch;

namespace ApbCluster.Model.Tests.Support;

/// <summary>Shape and layout of a <see cref="TinyCheckpoint"/>; defaults give a 2-layer GQA Llama.</summary>
public sealed record TinyCheckpointOptions
{
    /// <summary>"llama" or "qwen2" (Qwen 2 adds q/k/v biases and ChatML special tokens).</summary>
    public string ModelType { get; init; } = "llama";
    public int Layers { get; init; } = 2;
    public int Hidden { get; init; } = 64;
    public int Heads { get; init; } = 4;
    public int KvHeads { get; init; } = 2;
    public int Intermediate { get; init; } = 128;
    /// <summary>config.json's vocab_size; must be at least the tokenizer's size (256 bytes + merges + specials).</summary>
    public int VocabSize { get; init; } = 320;
    public bool TieEmbeddings { get; init; }
    public ScalarType DType { get; init; } = ScalarType.BFloat16;
    /// <summary>Writes a Llama 3.1 "llama3" rope_scaling block.</summary>
    public bool Llama3RopeScaling { get; init; }
    /// <summary>Writes shards of at most <see cref="MaxShardBytes"/> plus model.safetensors.index.json.</summary>
    public bool Sharded { get; init; }
    public long MaxShardBytes { get; init; } = 64 * 1024;
    public ulong Seed { get; init; } = 1234;
    /// <summary>Where to write; null makes a fresh temp folder.</summary>
    public string? Directory { get; init; }

    public static TinyCheckpointOptions Llama => new();
    public static TinyCheckpointOptions Qwen2 => new() { ModelType = "qwen2", TieEmbeddings = true };
}
