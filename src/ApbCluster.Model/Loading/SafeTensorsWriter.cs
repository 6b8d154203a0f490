using System.Text;
using System.Text.Json;
using static TorchSharp.torch;

namespace ApbCluster.Model.Loading;

/// <summary>Writes tensors in the safetensors format, as one file or as HF-style shards with an index.</summary>
public static class SafeTensorsWriter
{
    /// <summary>Writes <paramref name="tensors"/> (any device; copied to the CPU chunk by chunk) to <paramref name="path"/>.</summary>
    public static void Write(string path, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null) =>
        Write(path, tensors, metadata, TensorBytes.DefaultChunkBytes);

    internal static void Write(string path, IReadOnlyDictionary<string, Tensor> tensors,
        IReadOnlyDictionary<string, string>? metadata, long chunkBytes)
    {
        var names = tensors.Keys.Order(StringComparer.Ordinal).ToList();
        var header = BuildHeader(names, tensors, metadata);

        using var fs = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
        fs.Write(BitConverter.GetBytes((ulong)header.Length));
        fs.Write(header);
        foreach (var name in names) TensorBytes.CopyOut(tensors[name], fs, chunkBytes);
    }

    /// <summary>
    /// Writes shards of at most <paramref name="maxShardBytes"/> of tensor data each (a larger tensor
    /// gets a shard of its own) named like HF's, plus <c>model.safetensors.index.json</c>.
    /// </summary>
    public static IReadOnlyList<string> WriteSharded(string dir, IReadOnlyDictionary<string, Tensor> tensors, long maxShardBytes)
    {
        System.IO.Directory.CreateDirectory(dir);
        var shards = new List<List<string>>();
        long current = long.MaxValue;
        foreach (var name in tensors.Keys.Order(StringComparer.Ordinal))
        {
            long size = tensors[name].NumberOfElements * tensors[name].ElementSize;
            if (shards.Count == 0 || current + size > maxShardBytes) { shards.Add([]); current = 0; }
            shards[^1].Add(name);
            current += size;
        }

        var weightMap = new SortedDictionary<string, string>(StringComparer.Ordinal);
        var paths = new List<string>();
        for (int i = 0; i < shards.Count; i++)
        {
            var fileName = $"model-{i + 1:D5}-of-{shards.Count:D5}.safetensors";
            var path = Path.Combine(dir, fileName);
            Write(path, shards[i].ToDictionary(n => n, n => tensors[n]));
            foreach (var n in shards[i]) weightMap[n] = fileName;
            paths.Add(path);
        }
        long total = tensors.Values.Sum(t => t.NumberOfElements * t.ElementSize);
        var index = new { metadata = new { total_size = total }, weight_map = weightMap };
        File.WriteAllText(Path.Combine(dir, CheckpointWeights.IndexFileName),
            JsonSerializer.Serialize(index, new JsonSerializerOptions { WriteIndented = true }));
        return paths;
    }

    private static byte[] BuildHeader(List<string> names, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                w.WriteStartObject(SafeTensorsHeader.MetadataKey);
                foreach (var (k, v) in metadata) w.WriteString(k, v);
                w.WriteEndObject();
            }
            long offset = 0;
            foreach (var name in names)
            {
                var t = tensors[name];
                long size = t.NumberOfElements * t.ElementSize;
                w.WriteStartObject(name);
                w.WriteString("dtype", SafeTensorsDType.FromScalarType(t.dtype));
                w.WriteStartArray("shape");
                foreach (var d in t.shape) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                w.WriteNumberValue(offset + size);
                w.WriteEndArray();
                w.WriteEndObject();
                offset += size;
            }
            w.WriteEndObject();
        }
        // Pad with spaces to 8 bytes so the data region stays aligned (the format allows it).
        var header = ms.ToArray();
        int padded = (header.Length + 7) / 8 * 8;
        var result = Encoding.ASCII.GetBytes(new string(' ', padded));
        header.CopyTo(result, 0);
        return result;
    }
}
