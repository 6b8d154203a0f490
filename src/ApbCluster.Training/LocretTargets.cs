using ApbCluster.Model.Attention;
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
        var c = model.Config;
        int n = ids.Length, later = n - contextLength, groups = c.NumKvHeads, perGroup = c.KvGroupSize, d = c.HeadDim;
        model.Rope.EnsureCapacity(n);
        var positions = arange(n, dtype: ScalarType.Int64, device: model.Device);
        var h = model.Embed(tensor(ids, dtype: ScalarType.Int64, device: model.Device).reshape(1, -1));
        var (cos, sin) = model.Rope.CosSin(positions, h.dtype);
        var result = new LayerTargets[model.Layers.Count];
        foreach (var layer in model.Layers)
        {
            var p = layer.Project(h, cos, sin);
            var features = cat([Context(p.QPre, contextLength), Context(p.KPre, contextLength), Context(p.VPre, contextLength)], -1);
            var q = p.Q[0].narrow(0, contextLength, later).to(ScalarType.Float32).reshape(later, groups, perGroup, d);
            var k = p.K[0].narrow(0, 0, contextLength).to(ScalarType.Float32);      // [C, n_kv, D]
            var scores = einsum("agpd,cgd->cgap", q, k).mul_(model.Scale);          // [C, n_kv, later, group]
            var labels = scores.flatten(2).amax([2]);                                // [C, n_kv]
            result[layer.Index] = new LayerTargets(features.to(ScalarType.Float32).MoveToOuterDisposeScope(), labels.MoveToOuterDisposeScope());
            var attn = FusedAttention.Attend(p.Q, p.K, p.V, causal: true, model.Scale).Out;
            h = layer.Finish(h, attn);
        }
        return result;
    }

    private static Tensor Context(Tensor x, int contextLength) => x[0].narrow(0, 0, contextLength).reshape(contextLength, -1);
}
