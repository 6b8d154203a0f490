using static TorchSharp.torch;

namespace ApbCluster.Parallel.Compression;

/// <summary>
/// What a compressor sees for one host and layer: the local block's projections, [B, S, heads, D].
/// <see cref="QuestionQ"/>: the question's post-RoPE queries at their true positions (query-aware only).
/// </summary>
public sealed record CompressorInput(int Layer, int Host, Tensor QPre, Tensor KPre, Tensor VPre, Tensor K, Tensor? QuestionQ = null);

/// <summary>Scores every local token per KV head (higher = more worth passing): [B, S_local, n_kv] fp32.</summary>
public interface ICompressor
{
    /// <summary>True when <see cref="CompressorInput.QuestionQ"/> must be supplied.</summary>
    bool NeedsQuestion { get; }
    Tensor Score(CompressorInput input);
}
