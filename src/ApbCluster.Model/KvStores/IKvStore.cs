using static TorchSharp.torch;

namespace ApbCluster.Model.KvStores;

/// <summary>
/// A prompt's keys and values as decode steps read them: everything laid down before decoding began (a host's
/// shard, or a whole prompt on one device). Decode rows come after all of it, so it is attended without a causal
/// mask. A full store attends every key; a sparse store (ShadowKV) attends a subset it chooses per step, and still
/// returns an exact (out, lse) over what it attended, so the log-sum-exp merge with the decoded tokens' own KV, and
/// across hosts, stays exact over the union.
/// </summary>
public interface IKvStore : IDisposable
{
    /// <summary>"full", "shadowkv": what reports and benchmarks print.</summary>
    string Kind { get; }

    /// <summary>Context tokens held.</summary>
    long Length { get; }

    /// <summary>Bytes this store keeps in device memory (the GPU, or the CPU on a CPU run).</summary>
    long DeviceBytes { get; }

    /// <summary>Bytes kept in host memory apart from the device (values moved off the GPU); 0 when none.</summary>
    long HostBytes { get; }

    /// <summary>q [1, Sq, Hq, D] after RoPE, at positions after the context -> out [1, Sq, Hq, D] in q's dtype and
    /// lse [1, Hq, Sq] in fp32 (the layout of <see cref="Attention.FusedAttention.Attend"/>).</summary>
    (Tensor Out, Tensor Lse) Attend(int layer, Tensor q, double scale);
}
