using ApbCluster.Parallel.Compression;
using TorchSharp;
using static TorchSharp.torch;

namespace ApbCluster.Training;

/// <summary>
/// The retaining heads as trainable parameters: per layer fc1 [1024, in] -> SiLU -> fc2 [n_kv, 1024], no biases,
/// exactly <see cref="RetainingHeadCompressor"/>'s architecture, initialised like torch.nn.Linear.
/// </summary>
public sealed class TrainableRetainingHeads : IDisposable
{
    private readonly TorchSharp.Modules.Parameter[] _fc1, _fc2;

    public TrainableRetainingHeads(int layers, int inputWidth, int kvHeads, long seed, Device device)
    {
        var g = new TorchSharp.torch.Generator((ulong)seed);
        TorchSharp.Modules.Parameter Init(long outDim, long inDim)
        {
            // nn.Linear's default: U(-1/sqrt(in), 1/sqrt(in)).
            using var w = (rand([outDim, inDim], generator: g) * 2 - 1).mul_(1 / Math.Sqrt(inDim));
            return new TorchSharp.Modules.Parameter(w.to(device), requires_grad: true);
        }
        _fc1 = Enumerable.Range(0, layers).Select(_ => Init(RetainingHeadCompressor.HiddenWidth, inputWidth)).ToArray();
        _fc2 = Enumerable.Range(0, layers).Select(_ => Init(kvHeads, RetainingHeadCompressor.HiddenWidth)).ToArray();
    }

    public int Layers => _fc1.Length;
    public IEnumerable<TorchSharp.Modules.Parameter> Parameters => _fc1.Concat(_fc2);

    /// <summary>Predicted scores [C, n_kv] for features [C, in] (with autograd).</summary>
    public Tensor Predict(int layer, Tensor features) =>
        nn.functional.linear(nn.functional.silu(nn.functional.linear(features, _fc1[layer])), _fc2[layer]);

    /// <summary>A detached copy as the runtime's compressor (for scoring or saving).</summary>
    public RetainingHeadCompressor ToCompressor()
    {
        using var noGrad = no_grad();
        return new RetainingHeadCompressor(_fc1.Select(p => p.detach().clone()).ToArray(), _fc2.Select(p => p.detach().clone()).ToArray());
    }

    public void Dispose()
    {
        foreach (var p in Parameters) p.Dispose();
    }
}
