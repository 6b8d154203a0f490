using ApbCluster.Model.Config;
using ApbCluster.Model.Loading;
using static TorchSharp.torch;

namespace ApbCluster.Parallel.Compression;

/// <summary>Retaining heads in a safetensors file (the published key layout), for a given model.</summary>
public static class RetainingHeadsFile
{
    /// <summary>Where a model folder keeps its trained heads, beside the weights.</summary>
    public const string DefaultFileName = "retaining_heads.safetensors";

    /// <summary>The heads file beside a model folder's weights, or null when the folder has none.</summary>
    public static string? Beside(string modelDirectory)
    {
        var path = Path.Combine(modelDirectory, DefaultFileName);
        return File.Exists(path) ? path : null;
    }

    public static RetainingHeadCompressor Load(string path, ModelConfig config, Device device, ScalarType dtype)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"retaining heads file not found: {path}", path);
        using var file = SafeTensorsFile.Open(path);
        var tensors = file.Names.ToDictionary(n => n, n => file.Load(n));
        try
        {
            return RetainingHeadCompressor.Load(tensors, config.NumLayers, config.NumHeads * config.HeadDim,
                config.NumKvHeads * config.HeadDim, config.NumKvHeads, device, dtype);
        }
        catch (KeyNotFoundException e)
        {
            throw new ArgumentException($"{path}: {e.Message}", e);
        }
    }

    public static void Save(string path, RetainingHeadCompressor heads)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null) Directory.CreateDirectory(dir);
        SafeTensorsWriter.Write(path, heads.StateDict(), new Dictionary<string, string> { ["format"] = "pt", ["kind"] = "locret-retaining-heads" });
    }
}
