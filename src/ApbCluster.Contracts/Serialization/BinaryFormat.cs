using System.Text;

namespace ApbCluster.Contracts.Serialization;

/// <summary>
/// Small helpers on BinaryWriter/Reader: nullable strings, 7-bit varint lists. Counts and
/// token ids use varints because token ids are small and lists are long.
/// </summary>
internal static class BinaryFormat
{
    public static readonly Encoding Utf8 = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    public static void WriteNullable(this BinaryWriter w, string? value)
    {
        w.Write(value is not null);
        if (value is not null) w.Write(value);
    }

    public static string? ReadNullableString(this BinaryReader r) => r.ReadBoolean() ? r.ReadString() : null;

    public static void WriteNullable(this BinaryWriter w, long? value)
    {
        w.Write(value.HasValue);
        if (value.HasValue) w.Write(value.Value);
    }

    public static long? ReadNullableInt64(this BinaryReader r) => r.ReadBoolean() ? r.ReadInt64() : null;

    public static void WriteInts(this BinaryWriter w, IReadOnlyList<int> values)
    {
        w.Write7BitEncodedInt(values.Count);
        foreach (var v in values) w.Write7BitEncodedInt(v);
    }

    public static int[] ReadInts(this BinaryReader r)
    {
        var n = ReadCount(r);
        var values = new int[n];
        for (var i = 0; i < n; i++) values[i] = r.Read7BitEncodedInt();
        return values;
    }

    public static void WriteNullableInts(this BinaryWriter w, IReadOnlyList<int>? values)
    {
        w.Write(values is not null);
        if (values is not null) w.WriteInts(values);
    }

    public static int[]? ReadNullableInts(this BinaryReader r) => r.ReadBoolean() ? r.ReadInts() : null;

    public static void WriteStrings(this BinaryWriter w, IReadOnlyList<string> values)
    {
        w.Write7BitEncodedInt(values.Count);
        foreach (var v in values) w.Write(v);
    }

    public static string[] ReadStrings(this BinaryReader r)
    {
        var n = ReadCount(r);
        var values = new string[n];
        for (var i = 0; i < n; i++) values[i] = r.ReadString();
        return values;
    }

    public static void WriteList<T>(this BinaryWriter w, IReadOnlyList<T> values, Action<BinaryWriter, T> write)
    {
        w.Write7BitEncodedInt(values.Count);
        foreach (var v in values) write(w, v);
    }

    public static T[] ReadList<T>(this BinaryReader r, Func<BinaryReader, T> read)
    {
        var n = ReadCount(r);
        var values = new T[n];
        for (var i = 0; i < n; i++) values[i] = read(r);
        return values;
    }

    /// <summary>A count read from the wire; rejects negative or absurd values before allocating.</summary>
    private static int ReadCount(BinaryReader r)
    {
        var n = r.Read7BitEncodedInt();
        var remaining = r.BaseStream.Length - r.BaseStream.Position;
        if (n < 0 || n > remaining)
            throw new InvalidDataException($"list count {n} does not fit the {remaining} bytes left");
        return n;
    }
}
