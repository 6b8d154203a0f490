using System.Runtime.InteropServices;

namespace ApbCluster.NativeInterop.Nccl;

/// <summary>
/// Raw NCCL entry points (libnccl.so.2, signatures from nccl.h 2.28). ncclComm_t, cudaStream_t and
/// buffers are IntPtr; size_t counts are nuint. Prefer <see cref="NcclCommunicator"/>.
/// </summary>
public static unsafe partial class NcclNative
{
    static NcclNative() => NativeLibraries.EnsureResolver();

    [LibraryImport(NativeLibraries.Nccl, EntryPoint = "ncclGetVersion")]
    public static partial NcclResult GetVersion(out int version);

    [LibraryImport(NativeLibraries.Nccl, EntryPoint = "ncclGetUniqueId")]
    public static partial NcclResult GetUniqueId(out NcclUniqueId id);

    [LibraryImport(NativeLibraries.Nccl, EntryPoint = "ncclCommInitRank")]
    public static partial NcclResult CommInitRank(out IntPtr comm, int nranks, NcclUniqueId id, int rank);

    [LibraryImport(NativeLibraries.Nccl, EntryPoint = "ncclCommInitRankConfig")]
    public static partial NcclResult CommInitRankConfig(out IntPtr comm, int nranks, NcclUniqueId id, int rank, NcclConfig* config);

    [LibraryImport(NativeLibraries.Nccl, EntryPoint = "ncclCommInitAll")]
    public static partial NcclResult CommInitAll(IntPtr* comms, int ndev, int* devlist);

    [LibraryImport(NativeLibraries.Nccl, EntryPoint = "ncclCommFinalize")]
    public static partial NcclResult CommFinalize(IntPtr comm);

    [LibraryImport(NativeLibraries.Nccl, EntryPoint = "ncclCommDestroy")]
    public static partial NcclResult CommDestroy(IntPtr comm);

    [LibraryImport(NativeLibraries.Nccl, EntryPoint = "ncclCommAbort")]
    public static partial NcclResult CommAbort(IntPtr comm);

    [LibraryImport(NativeLibraries.Nccl, EntryPoint = "ncclCommGetAsyncError")]
    public static partial NcclResult CommGetAsyncError(IntPtr comm, out NcclResult asyncError);

    [LibraryImport(NativeLibraries.Nccl, EntryPoint = "ncclGetErrorString")]
    private static partial IntPtr GetErrorStringRaw(NcclResult result);

    [LibraryImport(NativeLibraries.Nccl, EntryPoint = "ncclGetLastError")]
    private static partial IntPtr GetLastErrorRaw(IntPtr comm);

    [LibraryImport(NativeLibraries.Nccl, EntryPoint = "ncclAllGather")]
    public static partial NcclResult AllGather(IntPtr sendbuff, IntPtr recvbuff, nuint sendcount, NcclDataType datatype, IntPtr comm, IntPtr stream);

    [LibraryImport(NativeLibraries.Nccl, EntryPoint = "ncclAllReduce")]
    public static partial NcclResult AllReduce(IntPtr sendbuff, IntPtr recvbuff, nuint count, NcclDataType datatype, NcclRedOp op, IntPtr comm, IntPtr stream);

    [LibraryImport(NativeLibraries.Nccl, EntryPoint = "ncclBroadcast")]
    public static partial NcclResult Broadcast(IntPtr sendbuff, IntPtr recvbuff, nuint count, NcclDataType datatype, int root, IntPtr comm, IntPtr stream);

    [LibraryImport(NativeLibraries.Nccl, EntryPoint = "ncclSend")]
    public static partial NcclResult Send(IntPtr sendbuff, nuint count, NcclDataType datatype, int peer, IntPtr comm, IntPtr stream);

    [LibraryImport(NativeLibraries.Nccl, EntryPoint = "ncclRecv")]
    public static partial NcclResult Recv(IntPtr recvbuff, nuint count, NcclDataType datatype, int peer, IntPtr comm, IntPtr stream);

    [LibraryImport(NativeLibraries.Nccl, EntryPoint = "ncclGroupStart")]
    public static partial NcclResult GroupStart();

    [LibraryImport(NativeLibraries.Nccl, EntryPoint = "ncclGroupEnd")]
    public static partial NcclResult GroupEnd();

    /// <summary>NCCL's text for a result code.</summary>
    public static string ErrorString(NcclResult result) =>
        Marshal.PtrToStringUTF8(GetErrorStringRaw(result)) ?? $"ncclResult {(int)result}";

    /// <summary>NCCL's last detailed error message (may be empty).</summary>
    public static string LastError(IntPtr comm) => Marshal.PtrToStringUTF8(GetLastErrorRaw(comm)) ?? "";

    /// <summary>The library's version as "2.28.9".</summary>
    public static string VersionString()
    {
        var r = GetVersion(out var v);
        if (r != NcclResult.Success) throw new InvalidOperationException($"ncclGetVersion failed: {ErrorString(r)}");
        // NCCL_VERSION(X,Y,Z) = X*10000 + Y*100 + Z for versions after 2.8.
        return v >= 10000 ? $"{v / 10000}.{v / 100 % 100}.{v % 100}" : $"{v / 1000}.{v / 100 % 10}.{v % 100}";
    }
}
