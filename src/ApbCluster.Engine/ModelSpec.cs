using System.Globalization;
using ApbCluster.Model.Config;
using ApbCluster.Model.Layers;
using ApbCluster.Model.Loading;
using static TorchSharp.torch;

namespace ApbCluster.Engine;

/// <summary>
/// Which model a node serves: a checkpoint directory (APB_MODEL_DIR), or a named shape with seeded
/// random weights (APB_MODEL=random:SHAPE:SEED, e.g. random:tiny:7) so every host has identical
/// weights without files (tests, benchmarks). Routers read the same setting for the tokenizer.
/// </summary>
public sealed record ModelSpec(string? Directory, string? RandomShape, long Seed)
{
    public static ModelSpec? Parse(string? model, string? modelDir)
    {
        if (!string.IsNullOrWhiteSpace(model))
        {
            var parts = model.Split(':');
            if (parts.Length != 3 || parts[0] != "random" || !long.TryParse(parts[2], NumberStyles.Integer, CultureInfo.InvariantCulture, out var seed))
                throw new FormatException($"model '{model}' is not random:SHAPE:SEED (shapes: {string.Join(", ", ModelShapes.Names)})");
            ModelShapes.Get(parts[1]); // unknown shape: fail at boot, naming the known ones
            return new ModelSpec(null, parts[1], seed);
        }
        if (string.IsNullOrWhiteSpace(modelDir)) return null;
        // Checked at boot: a missing mount otherwise surfaces later as "no tokenizer found".
        if (!System.IO.Directory.Exists(modelDir))
            throw new DirectoryNotFoundException($"model folder '{modelDir}' (APB_MODEL_DIR / apb.gpu-host.model-dir) does not exist");
        return new ModelSpec(modelDir, null, 0);
    }

    public string Name => RandomShape is { } shape ? $"random:{shape}:{Seed}" : Path.GetFileName(Path.TrimEndingDirectorySeparator(Directory!));

    /// <summary>The architecture, without loading weights.</summary>
    public ModelConfig Config() => RandomShape is { } shape ? ModelShapes.Get(shape) : ModelConfig.Load(Directory!);

    /// <summary>Loads (or creates) the weights on <paramref name="device"/>. Random models run fp32 on CPU.</summary>
    public LlamaModel Load(Device device)
    {
        if (RandomShape is { } shape)
        {
            var config = ModelShapes.Get(shape);
            return LlamaModel.CreateRandom(config, device, DtypeFor(config, device), Seed);
        }
        using var folder = ModelFolder.Open(Directory!);
        return LlamaModel.FromCheckpoint(folder.Config, folder.Weights, device, DtypeFor(folder.Config, device));
    }

    private static ScalarType DtypeFor(ModelConfig config, Device device) =>
        device.type != TorchSharp.DeviceType.CUDA ? ScalarType.Float32 : config.TorchDtype switch
        {
            "float16" => ScalarType.Float16,
            "float32" => ScalarType.Float32,
            _ => ScalarType.BFloat16,
        };
}
