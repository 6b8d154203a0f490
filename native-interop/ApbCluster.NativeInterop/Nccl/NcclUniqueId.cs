using System.Runtime.CompilerServices;

namespace ApbCluster.NativeInterop.Nccl;

/// <summary>
/// ncclUniqueId: 128 opaque bytes passed by value. Rank 0 creates it; it travels to the other ranks
/// in a message (<see cref="ToBytes"/> / <see cref="FromBytes"/>).
/// </summary>
[InlineArray(Size)]
public struct NcclUniqueId
{
    public const int Size = 128; // NCCL_UNIQUE_ID_BYTES
    private byte _element0;

    public readonly byte[] ToBytes()
    {
        var bytes = new byte[Size];
        ((ReadOnlySpan<byte>)this).CopyTo(bytes);
        return bytes;
    }

    public static NcclUniqueId FromBytes(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length != Size)
            throw new ArgumentException($"an NCCL unique id is {Size} bytes, got {bytes.Length}", nameof(bytes));
        var id = new NcclUniqueId();
        bytes.CopyTo(id);
        return id;
    }
}
