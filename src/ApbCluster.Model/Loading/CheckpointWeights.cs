using System.Text.Json;
using ApbCluster.Model.Config;
using static TorchSharp.torch;

namespace ApbCluster.Model.Loading;

/// <summary>
/// The weights of a HF checkpoint folder: one <c>model.safetensors</c>, or shards listed in
/// <c>model.safetensors.index.json</c>. Loads tensors by name with shape and dtype checks.
/// </summary>
public sealed class CheckpointWeights : IDisposable
{
    public const string SingleFileName = "model.safetensors";
    public const string IndexFileName = "model.safetensors.index.json";

    private readonly Dictionary<string, SafeTensorsFile> _fileOf;
    private readonly List<SafeTensorsFile> _files;

    public string Directory { get; }
    public IReadOnlyCollection<string> Names => _fileOf.Keys;
    public IReadOnlyList<SafeTensorsFile> Files => _files;

    private CheckpointWeights(string dir, List<SafeTensorsFile> files, Dictionary<string, SafeTensorsFile> fileOf)
    {
        Directory = dir;
        _files = files;
        _fileOf = fileOf;
    }

    /// <summary>Opens the weights of <paramref name="dir"/>: the index and its shards if present, else the single file.</summary>
    public static CheckpointWeights Open(string dir)
    {
        var indexPath = Path.Combine(dir, IndexFileName);
        var singlePath = Path.Combine(dir, SingleFileName);
        if (File.Exists(indexPath)) return OpenSharded(dir, indexPath);
        if (File.Exists(singlePath))
        {
            var file = SafeTensorsFile.Open(singlePath);
            return new CheckpointWeights(dir, [file], file.Names.ToDictionary(n => n, _ => file));
        }
        throw new ModelLoadException($"{dir}: no weights found: looked for {IndexFileName} and {SingleFileName}.");
    }

    private static CheckpointWeights OpenSharded(string dir, string indexPath)
    {
        using var index = JsonFile.Read(indexPath);
        if (index.Get("weight_map") is not { ValueKind: JsonValueKind.Object } map)
            throw index.Missing("weight_map");

        var files = new Dictionary<string, SafeTensorsFile>();
        var fileOf = new Dictionary<string, SafeTensorsFile>(StringComparer.Ordinal);
        try
        {
            foreach (var entry in map.EnumerateObject())
            {
                if (entry.Value.ValueKind != JsonValueKind.String)
                    throw index.WrongType("weight_map." + entry.Name, "a file name", entry.Value);
                var shardName = entry.Value.GetString()!;
                if (!files.TryGetValue(shardName, out var shard))
                {
                    var shardPath = Path.Combine(dir, shardName);
                    if (!File.Exists(shardPath))
                        throw index.Invalid("weight_map." + entry.Name, $"shard file {shardPath} not found.");
                    files[shardName] = shard = SafeTensorsFile.Open(shardPath);
                }
                if (!shard.Contains(entry.Name))
                    throw index.Invalid("weight_map." + entry.Name, $"the index places it in {shard.Path}, which has no such tensor.");
                fileOf[entry.Name] = shard;
            }
        }
        catch
        {
            foreach (var f in files.Values) f.Dispose();
            throw;
        }
        return new CheckpointWeights(dir, files.Values.ToList(), fileOf);
    }

    public bool Contains(string name) => _fileOf.ContainsKey(name);

    /// <summary>The file holding <paramref name="name"/>.</summary>
    public SafeTensorsFile FileOf(string name) => _fileOf.TryGetValue(name, out var f) ? f : throw MissingTensor(name);

    public SafeTensorInfo Info(string name) => FileOf(name).Info(name);

    /// <summary>
    /// Loads <paramref name="name"/> as <paramref name="dtype"/> on <paramref name="device"/>, checking
    /// its stored shape against <paramref name="expectedShape"/> before any bytes are copied.
    /// </summary>
    public Tensor Load(string name, long[] expectedShape, ScalarType dtype, Device device)
    {
        var file = FileOf(name);
        var info = file.Info(name);
        if (!info.Shape.SequenceEqual(expectedShape))
            throw new ModelLoadException(
                $"{file.Path}: tensor '{name}' has shape [{string.Join(", ", info.Shape)}], expected [{string.Join(", ", expectedShape)}].");
        return file.Load(name, dtype, device);
    }

    /// <summary>Loads <paramref name="name"/> as stored, on the CPU.</summary>
    public Tensor Load(string name) => FileOf(name).Load(name);

    private ModelLoadException MissingTensor(string name) =>
        new($"{Directory}: checkpoint has no tensor '{name}' (files: {string.Join(", ", _files.Select(f => Path.GetFileName(f.Path)))}).");

    public void Dispose()
    {
        foreach (var f in _files) f.Dispose();
    }
}
