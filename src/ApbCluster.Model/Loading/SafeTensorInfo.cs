namespace ApbCluster.Model.Loading;

/// <summary>One tensor's entry in a safetensors header. Offsets are relative to the data region.</summary>
public sealed record SafeTensorInfo(string Name, string DType, long[] Shape, long Begin, long End)
{
    public long ByteLength => End - Begin;
    public long NumElements => Shape.Aggregate(1L, (a, b) => a * b);
}
