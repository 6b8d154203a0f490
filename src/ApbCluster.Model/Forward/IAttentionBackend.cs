using ApbCluster.Model.Layers;
using static TorchSharp.torch;

namespace ApbCluster.Model.Forward;

/// <summary>
/// How a layer attends inside <see cref="LlamaModel.RunLayers"/>. The model owns the rest of every layer (norms,
/// projections, RoPE, MLP, residuals); a backend gets the layer's projections and returns the attention output.
/// Dense with a KV cache, each parallel strategy's host-local attention, Phase 2's shard-and-merge and batched
/// decode are backends over the same loop, so a new attention method is written once.
/// </summary>
public interface IAttentionBackend
{
    /// <summary>Attention output [B, S, Hq, D] in the model's dtype for the rows whose projections are
    /// <paramref name="p"/> (<paramref name="hidden"/>: the layer's input rows, for backends that re-project some).
    /// Runs inside the layer's dispose scope: a tensor kept past the layer must be moved out of it.</summary>
    Tensor Attend(int layer, Tensor hidden, QkvProjection p);
}
