using System.Buffers.Binary;
using static TorchSharp.torch;

namespace ApbCluster.Engine.DataPlane;

/// <summary>
/// One tensor on a data connection: a length-prefixed frame
/// <c>[int32 frame bytes][byte dtype][byte ndim][int64 x ndim shape][raw bytes]</c>, little-endian.
/// Built on the calling thread (it owns the tensor), written from any thread.
/// </summary>
internal static class TensorFrame
{
    /// <summary>Frames above this are refused: a corrupt length must not allocate gigabytes.</summary>
    public const int MaxFrameBytes = 1 << 30;

    public static byte[] Encode(Tensor t)
    {
        using var cpu = t.device_type == TorchSharp.DeviceType.CPU ? t.contiguous() : t.cpu().contiguous();
        long payload = cpu.NumberOfElements * cpu.ElementSize;
        int header = 2 + 8 * (int)cpu.ndim;
        if (payload + header > MaxFrameBytes) throw new ArgumentException($"tensor of {payload} bytes exceeds the data-plane frame limit");
        var frame = new byte[4 + header + payload];
        BinaryPrimitives.WriteInt32LittleEndian(frame, header + (int)payload);
        frame[4] = (byte)cpu.dtype;
        frame[5] = (byte)cpu.ndim;
        for (int i = 0; i < cpu.ndim; i++) BinaryPrimitives.WriteInt64LittleEndian(frame.AsSpan(6 + 8 * i), cpu.shape[i]);
        if (payload > 0)
        {
            using var flat = cpu.view(cpu.NumberOfElements);
            flat.bytes.CopyTo(frame.AsSpan(4 + header));
        }
        return frame;
    }

    /// <summary>Reads one frame's header and payload into a new CPU tensor; null when the peer closed cleanly.</summary>
    public static Tensor? Read(Stream stream)
    {
        Span<byte> lengthBytes = stackalloc byte[4];
        if (!ReadExactlyOrEnd(stream, lengthBytes)) return null;
        int length = BinaryPrimitives.ReadInt32LittleEndian(lengthBytes);
        if (length < 2 || length > MaxFrameBytes) throw new InvalidDataException($"bad data-plane frame length {length}");
        var head = new byte[2];
        stream.ReadExactly(head);
        var dtype = (ScalarType)head[0];
        int ndim = head[1];
        if (2 + 8L * ndim > length) throw new InvalidDataException($"data-plane frame of {length} bytes cannot hold a {ndim}-dimensional shape");
        var shapeBytes = new byte[8 * ndim];
        stream.ReadExactly(shapeBytes);
        var shape = new long[ndim];
        for (int i = 0; i < ndim; i++) shape[i] = BinaryPrimitives.ReadInt64LittleEndian(shapeBytes.AsSpan(8 * i));
        // Checked before allocating: a frame's header must not make the receiver allocate more than the frame carries.
        long payload = PayloadBytes(dtype, shape, length);
        if (payload != length - 2 - 8 * ndim)
            throw new InvalidDataException($"data-plane frame of {length} bytes does not match {dtype}[{string.Join(",", shape)}]");
        var t = empty(shape, dtype);
        if (payload > 0)
        {
            using var flat = t.view(t.NumberOfElements);
            stream.ReadExactly(flat.bytes);
        }
        return t;
    }

    /// <summary>Bytes a tensor of this dtype and shape holds; -1 for an unknown dtype, a negative dimension or more than the frame.</summary>
    private static long PayloadBytes(ScalarType dtype, long[] shape, int frameLength)
    {
        long size = dtype switch
        {
            ScalarType.Byte or ScalarType.Int8 or ScalarType.Bool => 1,
            ScalarType.Int16 or ScalarType.Float16 or ScalarType.BFloat16 => 2,
            ScalarType.Int32 or ScalarType.Float32 => 4,
            ScalarType.Int64 or ScalarType.Float64 => 8,
            _ => -1,
        };
        if (size < 0) return -1;
        long bytes = size;
        foreach (var d in shape)
        {
            if (d < 0) return -1;
            if (d > 0 && bytes > frameLength / d) return -1; // larger than the frame (and no overflow)
            bytes *= d;
        }
        return bytes;
    }

    private static bool ReadExactlyOrEnd(Stream stream, Span<byte> buffer)
    {
        int read = 0;
        while (read < buffer.Length)
        {
            int n = stream.Read(buffer[read..]);
            if (n == 0)
            {
                if (read == 0) return false;
                throw new EndOfStreamException("the peer closed the data connection mid-frame");
            }
            read += n;
        }
        return true;
    }
}
