namespace ApbCluster.Parallel.Kernels;

/// <summary>
/// Which query rows CritiPrefill prunes, from host-side numbers only (no device work). Rows are cut into segments of
/// <see cref="Segment"/> from the first row on. Segment s is pruned when it starts at or after the threshold (its
/// global position), its past holds at least the budget (s x segment >= budget: a shorter past is attended in full,
/// which is the same thing), and it is not the last segment. Both rules grow with s, so the pruned segments are one
/// run [<see cref="FirstPruned"/>, <see cref="FirstPruned"/> + <see cref="PrunedSegments"/>): full causal rows before
/// it, pruned rows, then the last segment, full causal over everything.
/// </summary>
public sealed record CritiPrefillLayout(int Rows, int Segment, int Block, int BudgetBlocks, int FirstPruned, int PrunedSegments)
{
    /// <summary>First row of the pruned run (= rows before it, attended full causal).</summary>
    public int PrunedStart => FirstPruned * Segment;

    public int PrunedRows => PrunedSegments * Segment;

    /// <summary>First row after the pruned run (the last segment's start when any is pruned).</summary>
    public int TailStart => PrunedStart + PrunedRows;

    /// <summary>Key blocks any pruned segment may choose from: those before the last pruned segment's start.</summary>
    public int CandidateBlocks => PrunedSegments == 0 ? 0 : (TailStart - Segment) / Block;

    public bool PrunesAnything => PrunedSegments > 0;

    /// <param name="rows">Query rows (= causal keys) of the part being pruned.</param>
    /// <param name="startPosition">Global position of the first row: 0 for dense, the local block's start on an APB host.</param>
    public static CritiPrefillLayout For(int rows, long startPosition, CritiPrefillOptions o)
    {
        int segments = (rows + o.Segment - 1) / o.Segment;
        long untilThreshold = Math.Max(0, o.Threshold - startPosition);
        long first = Math.Max((untilThreshold + o.Segment - 1) / o.Segment, (o.Budget + o.Segment - 1) / o.Segment);
        int pruned = (int)Math.Max(0, segments - 1 - first);
        return new CritiPrefillLayout(rows, o.Segment, o.Block, o.BudgetBlocks, pruned == 0 ? 0 : (int)first, pruned);
    }
}
