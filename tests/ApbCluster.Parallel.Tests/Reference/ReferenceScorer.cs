using ApbCluster.Parallel.Compression;
using static TorchSharp.torch;

namespace ApbCluster.Parallel.Tests.Reference;

/// <summary>A compressor's scores in float64, from their definitions: local rows' projections -> [S, n_kv].</summary>
internal abstract class ReferenceScorer
{
    public abstract bool NeedsQuestion { get; }

    /// <param name="local">The host's local rows at this layer.</param>
    /// <param name="questionQ">The question's rotated queries [l_q, Hq, D] (query-aware only).</param>
    public abstract Tensor Score(int layer, Qkv64 local, Tensor? questionQ);

    /// <summary>Locret retaining heads: fc2(silu(fc1([q_pre; k_pre; v]))) per token.</summary>
    public sealed class Retaining(RetainingHeadCompressor heads) : ReferenceScorer
    {
        private readonly Dictionary<string, Tensor> _w =
            heads.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().to(ScalarType.Float64, CPU).clone());

        public override bool NeedsQuestion => false;

        public override Tensor Score(int layer, Qkv64 local, Tensor? questionQ)
        {
            long s = local.QPre.shape[0];
            var input = cat([local.QPre.reshape(s, -1), local.KPre.reshape(s, -1), local.V.reshape(s, -1)], 1);
            var hidden = input.matmul(_w[RetainingHeadCompressor.Fc1Key(layer)].t());
            hidden = hidden / (1 + (-hidden).exp());
            return hidden.matmul(_w[RetainingHeadCompressor.Fc2Key(layer)].t());
        }
    }

    /// <summary>Query-aware: for KV head g, the mean over the question's queries and g's query heads of q . k_t.</summary>
    public sealed class QueryAware : ReferenceScorer
    {
        public override bool NeedsQuestion => true;

        public override Tensor Score(int layer, Qkv64 local, Tensor? questionQ)
        {
            var q = questionQ ?? throw new ArgumentException("query-aware scores need the question's queries");
            long s = local.K.shape[0], lq = q.shape[0], hq = q.shape[1], hkv = local.K.shape[1], group = hq / hkv;
            var scores = zeros(s, hkv, dtype: ScalarType.Float64);
            for (long g = 0; g < hkv; g++)
            {
                var sum = zeros(s, dtype: ScalarType.Float64);
                for (long j = 0; j < lq; j++)
                    for (long h = g * group; h < (g + 1) * group; h++)
                        sum += local.K.select(1, g).matmul(q[j, h]);
                scores[.., g] = sum / (lq * group);
            }
            return scores;
        }
    }
}
