using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace ApbCluster.NativeInterop;

/// <summary>Raw access to a TorchSharp tensor's storage, for handing buffers to NCCL.</summary>
public static partial class TorchTensors
{
    static TorchTensors() => NativeLibraries.EnsureResolver();

    // Exported by libLibTorchSharp: tensor.data_ptr(), i.e. the address including the view's offset.
    [LibraryImport(NativeLibraries.LibTorchSharp, EntryPoint = "THSTensor_data")]
    private static partial IntPtr THSTensor_data(IntPtr handle);

    /// <summary>Address of the first element. Only contiguous tensors: NCCL reads count elements linearly.</summary>
    public static IntPtr DataPointer(Tensor t)
    {
        if (!t.is_contiguous())
            throw new ArgumentException($"tensor {ShapeText(t.shape)} is not contiguous; call .contiguous() before a collective.");
        var p = THSTensor_data(t.Handle);
        torch.CheckForErrors();
        return p;
    }

    /// <summary>Bytes held by the tensor's elements.</summary>
    public static long ByteCount(Tensor t) => t.numel() * t.ElementSize;

    public static string ShapeText(long[] shape) => "[" + string.Join(", ", shape) + "]";
}
