using static TorchSharp.torch;

namespace ApbCluster.Parallel.Tests.Reference;

/// <summary>
/// Phase 2 from scratch: the question and the tokens generated so far, at positions n, n+1, ..., see every
/// cached document key (the hosts' K/V joined in position order) and each other causally. The suffix is
/// recomputed whole at every step (no cache), greedy argmax of the last row.
/// </summary>
internal static class Phase2Reference
{
    public static long[] Greedy(Fp64Llama m, IReadOnlyList<HostReference> hosts, long[] question, int steps)
    {
        var positions = hosts.SelectMany(h => h.Positions).ToArray();
        int n = positions.Length;
        if (!positions.SequenceEqual(Enumerable.Range(0, n).Select(p => (long)p)))
            throw new ArgumentException("the hosts' rows must cover the document's positions 0..n-1 in order");
        var keys = Enumerable.Range(0, m.Layers).Select(l => cat(hosts.Select(h => h.Keys[l]).ToArray(), 0)).ToArray();
        var values = Enumerable.Range(0, m.Layers).Select(l => cat(hosts.Select(h => h.Values[l]).ToArray(), 0)).ToArray();
        var suffix = question.ToList();
        var generated = new List<long>();
        for (int step = 0; step < steps; step++)
        {
            int s = suffix.Count;
            var pos = Enumerable.Range(n, s).Select(p => (long)p).ToArray();
            var visible = new bool[s, n + s];
            for (int i = 0; i < s; i++)
                for (int j = 0; j < n + i + 1; j++) visible[i, j] = true;
            var x = m.Embed(suffix);
            for (int layer = 0; layer < m.Layers; layer++)
            {
                var p = m.Project(layer, x, pos);
                x = m.Finish(layer, x, m.Attend(p.Q, cat([keys[layer], p.K], 0), cat([values[layer], p.V], 0), visible));
            }
            long next = m.Logits(x.narrow(0, s - 1, 1))[0].argmax().item<long>();
            generated.Add(next);
            suffix.Add(next);
        }
        return generated.ToArray();
    }
}
