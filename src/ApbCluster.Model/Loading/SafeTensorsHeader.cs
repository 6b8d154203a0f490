using System.Text.Json;
using ApbCluster.Model.Config;

namespace ApbCluster.Model.Loading;

/// <summary>
/// Parses and validates a safetensors header (u64 LE length, then JSON) before any tensor is
/// made, so that a lying header is an error message and never a native crash.
/// </summary>
internal static class SafeTensorsHeader
{
    public const string MetadataKey = "__metadata__";

    /// <summary>Reads the header of <paramref name="path"/>; returns the entries and where the data region starts.</summary>
    public static (Dictionary<string, SafeTensorInfo> Tensors, Dictionary<string, string> Metadata, long DataStart)
        Read(string path, Stream stream, long fileLength)
    {
        if (fileLength < 8)
            throw new ModelLoadException($"{path}: not a safetensors file: {fileLength} bytes, too short for the 8-byte header length.");
        Span<byte> lenBytes = stackalloc byte[8];
        stream.ReadExactly(lenBytes);
        ulong headerLen = BitConverter.ToUInt64(lenBytes);
        if (headerLen > (ulong)(fileLength - 8))
            throw new ModelLoadException($"{path}: header length {headerLen} runs past the end of the file ({fileLength} bytes).");
        if (headerLen > 100_000_000)
            throw new ModelLoadException($"{path}: header length {headerLen} is implausibly large (over 100 MB).");

        var headerBytes = new byte[headerLen];
        stream.ReadExactly(headerBytes);
        long dataStart = 8 + (long)headerLen;
        long dataLength = fileLength - dataStart;

        using var json = JsonFile.Parse(path + " (header)", headerBytes);
        var tensors = new Dictionary<string, SafeTensorInfo>(StringComparer.Ordinal);
        var metadata = new Dictionary<string, string>();
        foreach (var prop in json.Root.EnumerateObject())
        {
            if (prop.Name == MetadataKey)
            {
                if (prop.Value.ValueKind == JsonValueKind.Object)
                    foreach (var m in prop.Value.EnumerateObject())
                        metadata[m.Name] = m.Value.ValueKind == JsonValueKind.String ? m.Value.GetString()! : m.Value.GetRawText();
                continue;
            }
            tensors[prop.Name] = ParseEntry(path, prop.Name, prop.Value, dataLength);
        }
        return (tensors, metadata, dataStart);
    }

    private static SafeTensorInfo ParseEntry(string path, string name, JsonElement e, long dataLength)
    {
        ModelLoadException Bad(string why) => new($"{path}: tensor '{name}': {why}");
        if (e.ValueKind != JsonValueKind.Object) throw Bad("header entry is not an object.");

        if (!e.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String) throw Bad("missing or non-string 'dtype'.");
        var dtype = dt.GetString()!;
        if (!SafeTensorsDType.IsKnown(dtype)) throw Bad($"unknown dtype '{dtype}'.");

        if (!e.TryGetProperty("shape", out var sh) || sh.ValueKind != JsonValueKind.Array) throw Bad("missing or non-array 'shape'.");
        var shape = new long[sh.GetArrayLength()];
        int i = 0;
        foreach (var d in sh.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out var dim) || dim < 0) throw Bad($"invalid shape {sh.GetRawText()}.");
            shape[i++] = dim;
        }

        if (!e.TryGetProperty("data_offsets", out var off) || off.ValueKind != JsonValueKind.Array || off.GetArrayLength() != 2)
            throw Bad("'data_offsets' must be [begin, end].");
        if (!off[0].TryGetInt64(out var begin) || !off[1].TryGetInt64(out var end) || begin < 0 || end < begin)
            throw Bad($"invalid data_offsets {off.GetRawText()}.");
        if (end > dataLength)
            throw Bad($"data_offsets [{begin}, {end}] run past the data region ({dataLength} bytes after the header).");

        long needed;
        try { needed = checked(shape.Aggregate(1L, (a, b) => checked(a * b)) * SafeTensorsDType.ElementSize(dtype)); }
        catch (OverflowException) { throw Bad($"shape {sh.GetRawText()} is too large."); }
        if (end - begin != needed)
            throw Bad($"header says {end - begin} bytes, shape [{string.Join(", ", shape)}] * {dtype} needs {needed}.");
        return new SafeTensorInfo(name, dtype, shape, begin, end);
    }
}
