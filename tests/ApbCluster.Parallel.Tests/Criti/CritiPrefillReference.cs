using ApbCluster.Parallel.Kernels;
using static TorchSharp.torch;

namespace ApbCluster.Parallel.Tests.Criti;

/// <summary>CritiPrefill written as plain loops over segments, heads and blocks (float64), to check the batched code.</summary>
internal static class CritiPrefillReference
{
    /// <summary>Softmaxed block scores [segment m][kv head][block]; blocks a segment may not choose are 0.</summary>
    public static double[][][] Probabilities(Tensor q, Tensor k, CritiPrefillLayout layout)
    {
        var qa = q.to(ScalarType.Float64).contiguous().data<double>().ToArray();
        var ka = k.to(ScalarType.Float64).contiguous().data<double>().ToArray();
        int hq = (int)q.shape[2], hkv = (int)k.shape[2], d = (int)q.shape[3], g = hq / hkv;
        int seg = layout.Segment, bl = layout.Block, blocks = layout.CandidateBlocks;
        double Q(int row, int h, int i) => qa[(row * hq + h) * d + i];
        double K(int row, int h, int i) => ka[(row * hkv + h) * d + i];
        var result = new double[layout.PrunedSegments][][];
        for (int m = 0; m < layout.PrunedSegments; m++)
        {
            int s = layout.FirstPruned + m, allowed = s * seg / bl;
            result[m] = new double[hkv][];
            for (int h = 0; h < hkv; h++)
            {
                var score = new double[blocks];
                for (int b = 0; b < blocks; b++)
                {
                    double groupSum = 0;
                    for (int j = 0; j < g; j++)
                    {
                        int head = h * g + j;
                        double a = 0, c = 0;
                        foreach (bool useMax in new[] { true, false })
                            for (int i = 0; i < d; i++)
                            {
                                double qx = Enumerable.Range(s * seg, seg).Select(r => Q(r, head, i)).Aggregate(useMax ? Math.Max : Math.Min);
                                double kMax = Enumerable.Range(b * bl, bl).Select(r => K(r, h, i)).Max();
                                double kMin = Enumerable.Range(b * bl, bl).Select(r => K(r, h, i)).Min();
                                a += qx * kMax / 2; // mean over the two summary rows
                                c += qx * kMin / 2;
                            }
                        groupSum += Math.Max(a, c);
                    }
                    score[b] = groupSum / g;
                }
                double max = score.Take(allowed).Max();
                double sum = score.Take(allowed).Sum(x => Math.Exp(x - max));
                result[m][h] = score.Select((x, b) => b < allowed ? Math.Exp(x - max) / sum : 0).ToArray();
            }
        }
        return result;
    }

    /// <summary>The top <paramref name="count"/> blocks of each (segment, KV head), ascending.</summary>
    public static int[][][] TopBlocks(double[][][] probs, int count) =>
        probs.Select(seg => seg.Select(head => head.Select((p, b) => (p, b)).OrderByDescending(x => x.p).Take(count)
            .Select(x => x.b).Order().ToArray()).ToArray()).ToArray();

    /// <summary>Which causal key each row and query head sees under a selection: [Hq, rows, rows] (row-major bools).</summary>
    public static Tensor Mask(CritiPrefillLayout layout, int[][][]? blocks, int hq, int hkv)
    {
        int rows = layout.Rows, g = hq / hkv;
        var mask = new bool[hq * rows * rows];
        for (int head = 0; head < hq; head++)
            for (int r = 0; r < rows; r++)
            {
                int m = r < layout.PrunedStart || r >= layout.TailStart ? -1 : r / layout.Segment - layout.FirstPruned;
                for (int c = 0; c <= r; c++)
                {
                    bool visible = m < 0
                        || c >= (layout.FirstPruned + m) * layout.Segment // the segment's own rows, causally
                        || blocks![m][head / g].Contains(c / layout.Block);
                    mask[(head * rows + r) * rows + c] = visible;
                }
            }
        return tensor(mask).reshape(hq, rows, rows);
    }

    public static int[][][] ToArrays(Tensor blocks)
    {
        long m = blocks.shape[0], h = blocks.shape[1], n = blocks.shape[2];
        var flat = blocks.data<long>().ToArray();
        return Enumerable.Range(0, (int)m).Select(i => Enumerable.Range(0, (int)h).Select(j =>
            Enumerable.Range(0, (int)n).Select(x => (int)flat[(i * h + j) * n + x]).ToArray()).ToArray()).ToArray();
    }
}
