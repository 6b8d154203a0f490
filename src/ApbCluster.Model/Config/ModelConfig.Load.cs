namespace ApbCluster.Model.Config;

public sealed partial record ModelConfig
{
    /// <summary>The file name HF checkpoints keep their architecture in.</summary>
    public const string FileName = "config.json";

    /// <summary>Reads <c>config.json</c> from a HF model folder; any problem is a <see cref="ModelLoadException"/>.</summary>
    public static ModelConfig Load(string modelDir) => ModelConfigLoader.Load(Path.Combine(modelDir, FileName));
}
