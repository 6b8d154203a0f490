namespace ApbCluster.Parallel.Plan;

/// <summary>
/// The layout of one request over H hosts (docs/algorithm.md, Phase 1 steps 1-2): the block split with its
/// padding, the anchor and passing lengths, and how the anchor's tokens are built.
/// Positions are global document positions; the question follows the real document (position n).
/// </summary>
public sealed partial class ApbPlan
{
    public required ParallelMode Mode { get; init; }
    public required int Hosts { get; init; }
    /// <summary>n: real document tokens.</summary>
    public required int DocumentLength { get; init; }
    public required int QuestionLength { get; init; }
    /// <summary>l_b: the nominal (equal-split) block length; balanced blocks differ from it.</summary>
    public required int BlockLength { get; init; }
    /// <summary>l_a (0 for modes without an anchor).</summary>
    public required int AnchorLength { get; init; }
    /// <summary>l_p per KV head per host (0 for modes without passing).</summary>
    public required int PassingLength { get; init; }
    public required IReadOnlyList<HostBlock> Blocks { get; init; }
    public required int TemplateOffset { get; init; }
    public required bool EmbedQuestion { get; init; }
    public BlockSplit Split { get; init; } = BlockSplit.Equal;
    public bool Balanced => Split == BlockSplit.Balanced;

    /// <summary>Document length after padding (a multiple of H, or of 2H for the ring's zigzag).</summary>
    public int PaddedLength => Blocks.Sum(b => b.Length);
    public int Padding => PaddedLength - DocumentLength;
    public int LastHost => Hosts - 1;

    /// <summary>Host h's anchor length: host 0 has none (its block starts the document).</summary>
    public int AnchorFor(int host) => host == 0 ? 0 : AnchorLength;

    /// <summary>Host h's passing block: l_p tokens from each of hosts 0..h-1.</summary>
    public int PassingFor(int host) => host * PassingLength;

    /// <summary>The ring's zigzag: host h holds chunks h and 2H-1-h of 2H equal chunks (balances causal work).</summary>
    public IReadOnlyList<HostBlock> RingChunks(int host)
    {
        if (Mode != ParallelMode.Ring) throw new InvalidOperationException("zigzag chunks exist in ring plans only");
        int c = PaddedLength / (2 * Hosts);
        return [Chunk(host, host * c, c), Chunk(host, (2 * Hosts - 1 - host) * c, c)];
    }

    /// <summary>Global positions of host h's local tokens, ascending.</summary>
    public long[] LocalPositions(int host) =>
        (Mode == ParallelMode.Ring ? RingChunks(host) : [Blocks[host]])
            .SelectMany(b => Enumerable.Range(b.Start, b.Length).Select(p => (long)p)).ToArray();

    /// <summary>Host h's local token ids; padding positions get <paramref name="padId"/>.</summary>
    public long[] LocalTokens(int host, ReadOnlySpan<long> document, long padId = 0)
    {
        var pos = LocalPositions(host);
        var ids = new long[pos.Length];
        for (int i = 0; i < pos.Length; i++) ids[i] = pos[i] < DocumentLength ? document[(int)pos[i]] : padId;
        return ids;
    }

    /// <summary>
    /// The anchor (spec step 2): document tokens [0, offset) + question + the document from offset on,
    /// cut to exactly l_a; position ids 0..l_a-1. Without question embedding: the first l_a document tokens.
    /// </summary>
    public long[] AnchorTokens(ReadOnlySpan<long> document, ReadOnlySpan<long> question)
    {
        if (document.Length != DocumentLength) throw new ArgumentException($"document has {document.Length} tokens, the plan {DocumentLength}");
        var anchor = new List<long>(AnchorLength);
        int offset = EmbedQuestion ? Math.Min(TemplateOffset, DocumentLength) : DocumentLength;
        for (int i = 0; i < offset && anchor.Count < AnchorLength; i++) anchor.Add(document[i]);
        if (EmbedQuestion)
            for (int i = 0; i < question.Length && anchor.Count < AnchorLength; i++) anchor.Add(question[i]);
        for (int i = offset; i < DocumentLength && anchor.Count < AnchorLength; i++) anchor.Add(document[i]);
        return anchor.ToArray();
    }

    private HostBlock Chunk(int host, int start, int length) =>
        new(host, start, length, Math.Clamp(start + length - DocumentLength, 0, length));

    public override string ToString() =>
        $"{Mode} H={Hosts} n={DocumentLength} l_q={QuestionLength} l_b={BlockLength} l_a={AnchorLength} l_p={PassingLength} " +
        $"pad={Padding} split={Split.ToString().ToLowerInvariant()} blocks=[{string.Join(",", Blocks.Select(b => b.Length))}]";
}
