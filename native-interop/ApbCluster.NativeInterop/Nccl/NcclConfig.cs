using System.Runtime.InteropServices;

namespace ApbCluster.NativeInterop.Nccl;

/// <summary>
/// ncclConfig_t as laid out by NCCL 2.28's nccl.h (struct ncclConfig_v22800, 80 bytes on x64).
/// NCCL reads <see cref="Size"/> bytes of it and ignores fields newer than <see cref="Version"/>, so
/// this layout stays valid against later 2.x libraries. Build it with <see cref="Default"/>, which
/// mirrors NCCL_CONFIG_INITIALIZER; an uninitialised struct is rejected (magic check).
/// </summary>
[StructLayout(LayoutKind.Sequential)]
public struct NcclConfig
{
    public const int Undefined = int.MinValue;      // NCCL_CONFIG_UNDEF_INT
    public const uint ApiMagic = 0xcafebeef;         // NCCL_API_MAGIC
    public const uint HeaderVersionCode = 22809;     // NCCL_VERSION(2,28,9): the header this layout follows

    public nuint Size;
    public uint Magic;
    public uint Version;
    public int Blocking;
    public int CgaClusterSize;
    public int MinCTAs;
    public int MaxCTAs;
    public IntPtr NetName;           // const char*
    public int SplitShare;
    public int TrafficClass;
    public IntPtr CommName;          // const char*
    public int CollnetEnable;
    public int CTAPolicy;
    public int ShrinkShare;
    public int NvlsCTAs;
    public int NChannelsPerNetPeer;
    public int NvlinkCentricSched;

    /// <summary>NCCL_CONFIG_INITIALIZER: every attribute undefined (NCCL picks), header bookkeeping set.</summary>
    public static unsafe NcclConfig Default() => new()
    {
        Size = (nuint)sizeof(NcclConfig),
        Magic = ApiMagic,
        Version = HeaderVersionCode,
        Blocking = Undefined,
        CgaClusterSize = Undefined,
        MinCTAs = Undefined,
        MaxCTAs = Undefined,
        NetName = IntPtr.Zero,
        SplitShare = Undefined,
        TrafficClass = Undefined,
        CommName = IntPtr.Zero,
        CollnetEnable = Undefined,
        CTAPolicy = Undefined,
        ShrinkShare = Undefined,
        NvlsCTAs = Undefined,
        NChannelsPerNetPeer = Undefined,
        NvlinkCentricSched = Undefined,
    };

    /// <summary>Non-blocking communicator: calls return ncclInProgress and we poll, which is what lets the watchdog abort.</summary>
    public static NcclConfig NonBlocking()
    {
        var c = Default();
        c.Blocking = 0;
        return c;
    }
}
