using TorchSharp;

namespace ApbCluster.NativeInterop.Nccl;

/// <summary>ncclResult_t (nccl.h, 2.28).</summary>
public enum NcclResult
{
    Success = 0,
    UnhandledCudaError = 1,
    SystemError = 2,
    InternalError = 3,
    InvalidArgument = 4,
    InvalidUsage = 5,
    RemoteError = 6,
    InProgress = 7,
}

/// <summary>ncclDataType_t (nccl.h).</summary>
public enum NcclDataType
{
    Int8 = 0,
    UInt8 = 1,
    Int32 = 2,
    UInt32 = 3,
    Int64 = 4,
    UInt64 = 5,
    Float16 = 6,
    Float32 = 7,
    Float64 = 8,
    BFloat16 = 9,
}

/// <summary>ncclRedOp_t (nccl.h).</summary>
public enum NcclRedOp
{
    Sum = 0,
    Prod = 1,
    Max = 2,
    Min = 3,
    Avg = 4,
}

public static class NcclTypes
{
    /// <summary>The NCCL element type for a torch dtype; throws for types NCCL cannot move (complex).</summary>
    public static NcclDataType FromTorch(torch.ScalarType dtype) => dtype switch
    {
        torch.ScalarType.Float16 => NcclDataType.Float16,
        torch.ScalarType.Float32 => NcclDataType.Float32,
        torch.ScalarType.BFloat16 => NcclDataType.BFloat16,
        torch.ScalarType.Float64 => NcclDataType.Float64,
        torch.ScalarType.Int32 => NcclDataType.Int32,
        torch.ScalarType.Int64 => NcclDataType.Int64,
        torch.ScalarType.Byte => NcclDataType.UInt8,
        torch.ScalarType.Int8 => NcclDataType.Int8,
        torch.ScalarType.Bool => NcclDataType.UInt8, // one byte per element; NCCL only moves it
        _ => throw new NotSupportedException($"NCCL cannot transfer tensors of dtype {dtype}."),
    };
}
