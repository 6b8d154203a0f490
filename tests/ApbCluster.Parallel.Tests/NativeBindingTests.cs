using System.Runtime.InteropServices;
using ApbCluster.NativeInterop;
using ApbCluster.NativeInterop.Nccl;
using Xunit;

namespace ApbCluster.Parallel.Tests;

/// <summary>Binding checks that need no GPU: struct layouts against nccl.h 2.28, and the resolver's error.</summary>
public class NativeBindingTests
{
    [Fact]
    public void NcclConfig_matches_the_2_28_header_layout()
    {
        Assert.Equal(80, Marshal.SizeOf<NcclConfig>());
        Assert.Equal(16, (int)Marshal.OffsetOf<NcclConfig>(nameof(NcclConfig.Blocking)));
        Assert.Equal(32, (int)Marshal.OffsetOf<NcclConfig>(nameof(NcclConfig.NetName)));
        Assert.Equal(48, (int)Marshal.OffsetOf<NcclConfig>(nameof(NcclConfig.CommName)));
        Assert.Equal(76, (int)Marshal.OffsetOf<NcclConfig>(nameof(NcclConfig.NvlinkCentricSched)));
        var c = NcclConfig.NonBlocking();
        Assert.Equal(80u, (uint)c.Size);
        Assert.Equal(0xcafebeefu, c.Magic);
        Assert.Equal(0, c.Blocking);
        Assert.Equal(int.MinValue, c.CgaClusterSize);
    }

    [Fact]
    public void NcclUniqueId_is_128_bytes_and_round_trips()
    {
        Assert.Equal(128, Marshal.SizeOf<NcclUniqueId>());
        var bytes = Enumerable.Range(0, 128).Select(i => (byte)(i * 7)).ToArray();
        Assert.Equal(bytes, NcclUniqueId.FromBytes(bytes).ToBytes());
        Assert.Throws<ArgumentException>(() => NcclUniqueId.FromBytes(new byte[127]));
    }

    [Fact]
    public void Torch_dtypes_map_to_nccl_types()
    {
        Assert.Equal(NcclDataType.BFloat16, NcclTypes.FromTorch(TorchSharp.torch.ScalarType.BFloat16));
        Assert.Equal(NcclDataType.Float16, NcclTypes.FromTorch(TorchSharp.torch.ScalarType.Float16));
        Assert.Equal(7, (int)NcclTypes.FromTorch(TorchSharp.torch.ScalarType.Float32));
        Assert.Equal(2, (int)NcclTypes.FromTorch(TorchSharp.torch.ScalarType.Int32));
        Assert.Equal(4, (int)NcclTypes.FromTorch(TorchSharp.torch.ScalarType.Int64));
        Assert.Equal(1, (int)NcclTypes.FromTorch(TorchSharp.torch.ScalarType.Byte));
        Assert.Throws<NotSupportedException>(() => NcclTypes.FromTorch(TorchSharp.torch.ScalarType.ComplexFloat32));
    }

    [Fact]
    public void Missing_libnccl_gives_an_error_naming_the_library_and_the_places_searched()
    {
        Assert.SkipWhen(NativeLibraries.IsAvailable(NativeLibraries.Nccl), "libnccl is installed here");
        var e = Assert.Throws<NativeLibraryNotFoundException>(() => NativeLibraries.Load(NativeLibraries.Nccl));
        Assert.Equal("nccl", e.Library);
        Assert.Contains("libnccl.so.2", e.Message);
        Assert.Contains("APB_TORCH_LIB", e.Message);
        Assert.Contains(e.Searched, s => s.Contains("loader search path"));

        // Through an actual [LibraryImport] call the same exception reaches the caller.
        var viaCall = Assert.ThrowsAny<DllNotFoundException>(() => NcclNative.GetVersion(out _));
        Assert.Contains("libnccl.so.2", viaCall.Message);
    }

    [Fact]
    public void Missing_cudart_gives_an_error_naming_the_library()
    {
        Assert.SkipWhen(NativeLibraries.IsAvailable(NativeLibraries.CudaRuntime), "the CUDA runtime is installed here");
        var e = Assert.Throws<NativeLibraryNotFoundException>(() => NativeLibraries.Load(NativeLibraries.CudaRuntime));
        Assert.Contains("libcudart.so.13", e.Message);
        Assert.Contains("libcudart.so.12", e.Message);
    }
}
