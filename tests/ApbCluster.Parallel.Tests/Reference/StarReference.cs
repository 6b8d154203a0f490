using ApbCluster.Parallel.Plan;
using static TorchSharp.torch;

namespace ApbCluster.Parallel.Tests.Reference;

/// <summary>
/// Star attention from scratch: host h > 0 runs [anchor = the document's first l_a tokens at positions
/// 0..l_a-1; its own block] under one explicit mask (anchor rows causal over the anchor, local rows every
/// anchor key and causal over their own block); host 0 runs its block plainly causal.
/// </summary>
internal static class StarReference
{
    public static HostReference[] Run(Fp64Llama m, ApbPlan plan, long[] document) =>
        Enumerable.Range(0, plan.Hosts).Select(h => Host(m, plan, document, h)).ToArray();

    private static HostReference Host(Fp64Llama m, ApbPlan plan, long[] document, int host)
    {
        int la = host == 0 ? 0 : plan.AnchorLength;
        var (localIds, localPos) = HostReference.LocalRows(plan, host, document);
        var ids = document.Take(la).Concat(localIds).ToArray();
        var pos = Enumerable.Range(0, la).Select(p => (long)p).Concat(localPos).ToArray();
        int s = ids.Length;
        var visible = new bool[s, s];
        for (int i = 0; i < s; i++)
            for (int j = 0; j < s; j++)
                visible[i, j] = i < la ? j <= i : j < la || j <= i;
        var x = m.Embed(ids);
        var keys = new Tensor[m.Layers];
        var values = new Tensor[m.Layers];
        for (int layer = 0; layer < m.Layers; layer++)
        {
            var p = m.Project(layer, x, pos);
            keys[layer] = p.K;
            values[layer] = p.V;
            x = m.Finish(layer, x, m.Attend(p.Q, p.K, p.V, visible));
        }
        return HostReference.Keep(pos, plan.DocumentLength, la, x, keys, values);
    }
}
