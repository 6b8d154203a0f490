using ApbCluster.Model.Config;
using ApbCluster.Model.Tokenization;

namespace ApbCluster.Model.Loading;

/// <summary>A HF model folder opened in one call: config, weights, tokenizer and chat template.</summary>
public sealed class ModelFolder : IDisposable
{
    public string Directory { get; }
    public ModelConfig Config { get; }
    public CheckpointWeights Weights { get; }
    public TextTokenizer Tokenizer { get; }
    public ChatTemplate Template { get; }

    private ModelFolder(string dir, ModelConfig config, CheckpointWeights weights, TextTokenizer tokenizer, ChatTemplate template)
    {
        Directory = dir;
        Config = config;
        Weights = weights;
        Tokenizer = tokenizer;
        Template = template;
    }

    /// <summary>Opens <paramref name="dir"/>; every problem is a <see cref="ModelLoadException"/> naming the file and key.</summary>
    public static ModelFolder Open(string dir)
    {
        if (!System.IO.Directory.Exists(dir)) throw new ModelLoadException($"{dir}: model folder not found.");
        var config = ModelConfig.Load(dir);
        var tokenizer = TextTokenizer.Load(dir);
        if (tokenizer.VocabSize > config.VocabSize)
            throw new ModelLoadException(
                $"{Path.Combine(dir, ModelConfig.FileName)}: key 'vocab_size' is {config.VocabSize}, but the tokenizer has ids up to {tokenizer.VocabSize - 1}.");
        var weights = CheckpointWeights.Open(dir);
        return new ModelFolder(dir, config, weights, tokenizer, ChatTemplate.For(config, tokenizer, ChatTemplate.ReadJinja(dir)));
    }

    public void Dispose() => Weights.Dispose();
}
