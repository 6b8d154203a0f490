using System.Buffers;
using System.Text;

namespace ApbCluster.Runtime.Admin;

/// <summary>
/// Reads '\n'-terminated UTF-8 lines of at most <see cref="MaxBytes"/> bytes. StreamReader.ReadLine buffers
/// a line of any length, so a client that never sends a newline could make the node allocate without
/// bound before anything was checked; here a longer line throws <see cref="LineTooLongException"/>
/// after reading MaxBytes + one buffer at most.
/// </summary>
internal sealed class BoundedLineReader(Stream stream, int maxBytes)
{
    private readonly byte[] _buffer = new byte[8192];
    private int _start, _end;

    public int MaxBytes => maxBytes;

    /// <summary>The next line without its terminator; null at end of stream.</summary>
    public async Task<string?> ReadLineAsync(CancellationToken ct)
    {
        var line = new ArrayBufferWriter<byte>();
        while (true)
        {
            var newline = Array.IndexOf(_buffer, (byte)'\n', _start, _end - _start);
            var take = (newline >= 0 ? newline : _end) - _start;
            if (line.WrittenCount + take > maxBytes) throw new LineTooLongException(maxBytes);
            line.Write(_buffer.AsSpan(_start, take));
            if (newline >= 0)
            {
                _start = newline + 1;
                return Decode(line.WrittenSpan);
            }
            _start = _end = 0;
            var n = await stream.ReadAsync(_buffer, ct);
            if (n == 0) return line.WrittenCount == 0 ? null : Decode(line.WrittenSpan);
            _end = n;
        }
    }

    private static string Decode(ReadOnlySpan<byte> bytes) =>
        Encoding.UTF8.GetString(bytes.Length > 0 && bytes[^1] == '\r' ? bytes[..^1] : bytes);
}

internal sealed class LineTooLongException(int maxBytes)
    : Exception($"request line longer than {maxBytes} bytes (admin requests are one short JSON line); connection closed");
