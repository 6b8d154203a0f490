using static TorchSharp.torch;

namespace ApbCluster.Parallel.Compression;

/// <summary>Ablation baseline: uniform random scores, reproducible from the seed, the layer and the host.</summary>
public sealed class RandomCompressor(long seed) : ICompressor
{
    public bool NeedsQuestion => false;

    public Tensor Score(CompressorInput x)
    {
        var g = new TorchSharp.torch.Generator((ulong)(seed * 1_000_003 + x.Layer * 131 + x.Host));
        return rand([x.K.shape[0], x.K.shape[1], x.K.shape[2]], generator: g).to(x.K.device);
    }
}
