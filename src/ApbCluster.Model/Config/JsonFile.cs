using System.Text.Json;

namespace ApbCluster.Model.Config;

/// <summary>
/// A parsed JSON file plus typed accessors whose errors name the file and the key, so callers
/// never have to format those messages themselves.
/// </summary>
internal sealed class JsonFile : IDisposable
{
    private readonly JsonDocument _doc;

    public string Path { get; }
    public JsonElement Root => _doc.RootElement;

    private JsonFile(string path, JsonDocument doc) { Path = path; _doc = doc; }

    /// <summary>Reads and parses <paramref name="path"/>; a missing file or bad JSON is a <see cref="ModelLoadException"/>.</summary>
    public static JsonFile Read(string path)
    {
        if (!File.Exists(path)) throw new ModelLoadException($"{path}: file not found.");
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        { throw new ModelLoadException($"{path}: cannot read file: {e.Message}", e); }
        return Parse(path, bytes);
    }

    public static JsonFile Parse(string path, ReadOnlyMemory<byte> utf8)
    {
        try
        {
            var doc = JsonDocument.Parse(utf8, new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new ModelLoadException($"{path}: expected a JSON object at the top level, found {doc.RootElement.ValueKind}.");
            return new JsonFile(path, doc);
        }
        catch (JsonException e)
        {
            throw new ModelLoadException(
                $"{path}: invalid JSON at line {e.LineNumber + 1}, byte {e.BytePositionInLine + 1}: {e.Message}", e);
        }
    }

    public bool Has(string key) => Root.TryGetProperty(key, out var v) && v.ValueKind != JsonValueKind.Null;

    public JsonElement? Get(string key) =>
        Root.TryGetProperty(key, out var v) && v.ValueKind != JsonValueKind.Null ? v : null;

    public int RequiredInt(string key) =>
        Get(key) is { } v ? AsInt(v, key) : throw Missing(key);

    public int? OptionalInt(string key) => Get(key) is { } v ? AsInt(v, key) : null;

    public double? OptionalDouble(string key) => Get(key) is { } v ? AsDouble(v, key) : null;

    public bool? OptionalBool(string key)
    {
        if (Get(key) is not { } v) return null;
        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw WrongType(key, "true or false", v),
        };
    }

    public string? OptionalString(string key)
    {
        if (Get(key) is not { } v) return null;
        return v.ValueKind == JsonValueKind.String ? v.GetString() : throw WrongType(key, "a string", v);
    }

    /// <summary>An id that may be one integer or a list of them (eos_token_id).</summary>
    public IReadOnlyList<int> IntOrIntList(string key)
    {
        if (Get(key) is not { } v) return [];
        if (v.ValueKind == JsonValueKind.Array) return v.EnumerateArray().Select(e => AsInt(e, key)).ToArray();
        return [AsInt(v, key)];
    }

    public int AsInt(JsonElement v, string key) =>
        v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out var i) ? i : throw WrongType(key, "an integer", v);

    public double AsDouble(JsonElement v, string key) =>
        v.ValueKind == JsonValueKind.Number ? v.GetDouble() : throw WrongType(key, "a number", v);

    public ModelLoadException Missing(string key) => new($"{Path}: required key '{key}' is missing.");

    public ModelLoadException Invalid(string key, string why) => new($"{Path}: key '{key}': {why}");

    public ModelLoadException WrongType(string key, string expected, JsonElement found) =>
        new($"{Path}: key '{key}' must be {expected}, found {found.ValueKind} ({Shorten(found.GetRawText())}).");

    private static string Shorten(string s) => s.Length <= 60 ? s : s[..60] + "...";

    public void Dispose() => _doc.Dispose();
}
