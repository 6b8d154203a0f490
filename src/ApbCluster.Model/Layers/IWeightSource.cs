using TorchSharp;
using static TorchSharp.torch;

namespace ApbCluster.Model.Layers;

/// <summary>
/// Where the model's weights come from, by Hugging Face name (e.g. "model.layers.0.self_attn.q_proj.weight").
/// Implementations return a fresh tensor of exactly <paramref name="shape"/>, in <paramref name="dtype"/>,
/// on <paramref name="device"/>, and throw a clear error for a missing tensor or a shape mismatch.
/// The safetensors reader (CheckpointWeights) and in-memory test weights implement it.
/// </summary>
public interface IWeightSource
{
    Tensor Load(string name, long[] shape, ScalarType dtype, Device device);
}

/// <summary>Normally distributed weights generated directly on the device, for benchmarks at real shapes.</summary>
public sealed class RandomWeights : IWeightSource, IDisposable
{
    private readonly Generator? _generator;

    public RandomWeights(Device device, long seed)
    {
        // TorchSharp 0.107 makes CPU generators only; on CUDA, seed the devices' default generators instead
        // (models are built one after another, so the same seed gives the same weights on every GPU).
        if (device.type == DeviceType.CUDA) cuda.manual_seed_all(seed);
        else _generator = new Generator((ulong)seed, device);
    }

    public Tensor Load(string name, long[] shape, ScalarType dtype, Device device)
    {
        var t = randn(shape, dtype: dtype, device: device, generator: _generator);
        // Norm weights near 1 (as trained models have), everything else small, so activations stay finite in bf16.
        if (name.EndsWith("norm.weight", StringComparison.Ordinal)) return t.mul_(0.02).add_(1.0);
        long fanIn = shape.Length > 1 ? shape[^1] : 1;
        return name.Contains("embed_tokens", StringComparison.Ordinal) ? t : t.mul_(1.0 / Math.Sqrt(fanIn));
    }

    public void Dispose() => _generator?.Dispose();
}

/// <summary>Weights from a Hugging Face safetensors checkpoint (single file or sharded).</summary>
public sealed class CheckpointWeightSource(Loading.CheckpointWeights weights) : IWeightSource
{
    public Tensor Load(string name, long[] shape, ScalarType dtype, Device device) => weights.Load(name, shape, dtype, device);
}
