using TorchSharp;

namespace ApbCluster.Model.Loading;

/// <summary>The dtype names of the safetensors format, their sizes and torch equivalents.</summary>
public static class SafeTensorsDType
{
    // Every dtype the format defines, so that sizes can be validated even for tensors we cannot load.
    private static readonly Dictionary<string, int> Sizes = new()
    {
        ["BOOL"] = 1, ["U8"] = 1, ["I8"] = 1, ["F8_E5M2"] = 1, ["F8_E4M3"] = 1,
        ["I16"] = 2, ["U16"] = 2, ["F16"] = 2, ["BF16"] = 2,
        ["I32"] = 4, ["U32"] = 4, ["F32"] = 4,
        ["I64"] = 8, ["U64"] = 8, ["F64"] = 8,
    };

    /// <summary>The dtypes <see cref="SafeTensorsFile.Load"/> can turn into tensors.</summary>
    public static readonly IReadOnlyList<string> Loadable = ["BF16", "F16", "F32"];

    public static bool IsKnown(string dtype) => Sizes.ContainsKey(dtype);

    public static int ElementSize(string dtype) => Sizes[dtype];

    /// <summary>The torch type of a loadable dtype, or null.</summary>
    public static torch.ScalarType? ToScalarType(string dtype) => dtype switch
    {
        "BF16" => torch.ScalarType.BFloat16,
        "F16" => torch.ScalarType.Float16,
        "F32" => torch.ScalarType.Float32,
        _ => null,
    };

    /// <summary>The safetensors name of a torch type the writer accepts.</summary>
    public static string FromScalarType(torch.ScalarType type) => type switch
    {
        torch.ScalarType.BFloat16 => "BF16",
        torch.ScalarType.Float16 => "F16",
        torch.ScalarType.Float32 => "F32",
        torch.ScalarType.Float64 => "F64",
        torch.ScalarType.Int64 => "I64",
        torch.ScalarType.Int32 => "I32",
        torch.ScalarType.Int16 => "I16",
        torch.ScalarType.Int8 => "I8",
        torch.ScalarType.Byte => "U8",
        torch.ScalarType.Bool => "BOOL",
        _ => throw new ArgumentException($"safetensors has no dtype for {type}."),
    };
}
