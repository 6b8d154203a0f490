namespace ApbCluster.Parallel.Plan;

/// <summary>
/// Host <see cref="Host"/>'s contiguous slice of the (padded) document: global positions
/// [Start, Start + Length). The last <see cref="Padding"/> of them are padding (positions at or past
/// the document's end) and are dropped from the host's KV after prefill.
/// </summary>
public sealed record HostBlock(int Host, int Start, int Length, int Padding)
{
    public int End => Start + Length;
    /// <summary>Real document tokens in the block.</summary>
    public int RealLength => Length - Padding;
}
