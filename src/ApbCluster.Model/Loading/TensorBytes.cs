using TorchSharp;
using static TorchSharp.torch;

namespace ApbCluster.Model.Loading;

/// <summary>
/// Copies raw bytes in and out of CPU tensors in chunks. TorchSharp's <c>Tensor.bytes</c> is a
/// Span (2 GB cap), so we take it on narrow views of a flat tensor, one chunk at a time.
/// </summary>
internal static class TensorBytes
{
    /// <summary>256 MiB: far below the Span limit, big enough that per-chunk overhead is nil.</summary>
    public const long DefaultChunkBytes = 256L << 20;

    /// <summary>Fills contiguous CPU tensor <paramref name="dest"/> from <paramref name="source"/> (its exact byte size).</summary>
    public static unsafe void CopyIn(Tensor dest, byte* source, long chunkBytes = DefaultChunkBytes)
    {
        ForEachChunk(dest, chunkBytes, (chunk, offset) =>
        {
            var span = chunk.bytes;
            new ReadOnlySpan<byte>(source + offset, span.Length).CopyTo(span);
        });
    }

    /// <summary>Writes the bytes of <paramref name="src"/> to <paramref name="stream"/> chunk by chunk.</summary>
    public static void CopyOut(Tensor src, Stream stream, long chunkBytes = DefaultChunkBytes)
    {
        using var cpu = src.device_type == DeviceType.CPU ? src.contiguous() : src.cpu().contiguous();
        ForEachChunk(cpu, chunkBytes, (chunk, _) => stream.Write(chunk.bytes));
    }

    private static void ForEachChunk(Tensor t, long chunkBytes, Action<Tensor, long> action)
    {
        long numel = t.NumberOfElements;
        if (numel == 0) return;
        long elem = t.ElementSize;
        long chunkElems = Math.Max(1, Math.Min(chunkBytes, int.MaxValue) / elem);
        using var flat = t.view(numel);
        for (long start = 0; start < numel; start += chunkElems)
        {
            using var chunk = flat.narrow(0, start, Math.Min(chunkElems, numel - start));
            action(chunk, start * elem);
        }
    }
}
