using System.Buffers;
using System.Text;

namespace ApbCluster.Contracts;

/// <summary>
/// Where bytes stop being UTF-8 text. Decoding them anyway turns each bad byte into U+FFFD and the
/// model reads garbage without a word, so callers (a context file, an HTTP body) refuse them and
/// name the byte offset, which is what a user needs to find a Latin-1 "é" or a binary file.
/// </summary>
public static class Utf8Check
{
    /// <summary>Offset of the first byte that is not part of valid UTF-8, or -1 when all of it is.</summary>
    public static long FirstInvalidByte(ReadOnlySpan<byte> bytes)
    {
        long offset = 0;
        while (!bytes.IsEmpty)
        {
            if (Rune.DecodeFromUtf8(bytes, out _, out var consumed) != OperationStatus.Done) return offset;
            bytes = bytes[consumed..];
            offset += consumed;
        }
        return -1;
    }
}
