using ApbCluster.Model.Attention;
using ApbCluster.Model.Forward;
using ApbCluster.Model.Layers;
using static TorchSharp.torch;

namespace ApbCluster.Training;

/// <summary>One layer's training pair: the heads' input for every context token and the label to predict.</summary>
/// <param name="Features">concat(pre-RoPE q, k, v) per context token, [C, (n_heads + 2 n_kv) D], fp32.</param>
/// <param name="Labels">per context token and KV head, the max pre-softmax score it receives from a later position, [C, n_kv], fp32.</param>
public sealed record LayerTargets(Tensor Features, Tensor Labels);

/// <summary>
/// Locret's labels (docs/algorithm.md, "Locret training") from one frozen dense forward of context + later tokens:
/// label[t, g] = max over later positions a and the query heads h of KV group g of q_a,h . k_t,g / sqrt(D)
/// (post-RoPE, i.e. the real attention logits).
/// </summary>
public static class LocretTargets
{
    /// <param name="ids">The whole sequence: context tokens, then the later (question + answer) tokens.</param>
    /// <param name="contextLength">How many leading tokens are context (get labels).</param>
    public static LayerTargets[] Compute(LlamaModel model, long[] ids, int contextLength)
    {
        if (contextLength < 1 || contextLength >= ids.Length)
            throw new ArgumentException($"context length {contextLength} must leave at least one later token in a sequence of {ids.Length}.");
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        model.Rope.EnsureCapacity(ids.Length);
        var positions = arange(ids.Length, dtype: ScalarType.Int64, device: model.Device);
        var h = model.Embed(tensor(ids, dtype: ScalarType.Int64, device: model.Device).reshape(1, -1));
        var angles = model.Rope.Angles(positions, h.dtype);
        var labelling = new Labelling(model, contextLength);
        model.RunLayers(h, angles, labelling);
        foreach (var t in labelling.Result)
        {
            t.Features.MoveToOuterDisposeScope();
            t.Labels.MoveToOuterDisposeScope();
        }
        return labelling.Result;
    }

    /// <summary>Dense causal attention that records each layer's features and labels on the way.</summary>
    private sealed class Labelling(LlamaModel model, int contextLength) : IAttentionBackend
    {
        public LayerTargets[] Result { get; } = new LayerTargets[model.Layers.Count];

        public Tensor Attend(int layer, Tensor hidden, QkvProjection p)
        {
            var c = model.Config;
            int later = (int)p.Q.shape[1] - contextLength, groups = c.NumKvHeads, perGroup = c.KvGroupSize, d = c.HeadDim;
            var features = cat([Context(p.QPre, contextLength), Context(p.KPre, contextLength), Context(p.VPre, contextLength)], -1);
            var q = p.Q[0].narrow(0, contextLength, later).to(ScalarType.Float32).reshape(later, groups, perGroup, d);
            var k = p.K[0].narrow(0, 0, contextLength).to(ScalarType.Float32);      // [C, n_kv, D]
            var scores = einsum("agpd,cgd->cgap", q, k).mul_(model.Scale);          // [C, n_kv, later, group]
            var labels = scores.flatten(2).amax([2]);                                // [C, n_kv]
            // Out of the layer's scope into Compute's, which hands them on to its caller.
            Result[layer] = new LayerTargets(features.to(ScalarType.Float32).MoveToOuterDisposeScope(), labels.MoveToOuterDisposeScope());
            return FusedAttention.Attend(p.Q, p.K, p.V, causal: true, model.Scale).Out;
        }
    }

    private static Tensor Context(Tensor x, int contextLength) => x[0].narrow(0, 0, contextLength).reshape(contextLength, -1);
}
