namespace ApbCluster.Parallel.Plan;

/// <summary>How the document is split into the hosts' blocks (apb and star; the other modes split equally).</summary>
public enum BlockSplit
{
    /// <summary>Unequal blocks with about equal prefill cost per host (host 0 has no anchor, later hosts attend
    /// longer passing blocks): every host finishes at about the same time.</summary>
    Balanced,

    /// <summary>Equal blocks (the paper's layout; lossless passing needs it).</summary>
    Equal,
}

/// <summary>What the caller asks for; <see cref="ApbPlan.Create"/> fills the defaults and validates.</summary>
public sealed record PlanRequest
{
    public required int DocumentLength { get; init; }
    public int QuestionLength { get; init; }
    public required int Hosts { get; init; }
    public ParallelMode Mode { get; init; } = ParallelMode.Apb;
    /// <summary>l_a; null = the default (block/<see cref="AnchorDivisor"/> for APB, a block for Star, 0 otherwise).</summary>
    public int? AnchorLength { get; init; }
    /// <summary>l_p per KV head per host; null = block/8 for APB, 0 otherwise.</summary>
    public int? PassingLength { get; init; }
    /// <summary>Lossless APB: pass every token of every earlier block (l_p = l_b).</summary>
    public bool PassAll { get; init; }
    /// <summary>APB's default anchor is block / this (docs/algorithm.md says why 8, not the paper's 4).</summary>
    public int AnchorDivisor { get; init; } = ApbPlan.DefaultAnchorDivisor;
    /// <summary>null = <see cref="BlockSplit.Balanced"/> for apb and star on several hosts (equal when passing
    /// everything), equal otherwise.</summary>
    public BlockSplit? Split { get; init; }
    /// <summary>The cost model of the balanced split; null = <see cref="CostModel.Default"/>.</summary>
    public CostModel? Cost { get; init; }
    /// <summary>Block lengths decided elsewhere (a host re-creating its router's plan); overrides <see cref="Split"/>.</summary>
    public IReadOnlyList<int>? BlockLengths { get; init; }
    /// <summary>Where the question goes inside the anchor: after the chat template's first tokens (16 for Llama 3).</summary>
    public int TemplateOffset { get; init; } = 16;
    /// <summary>Embed the question in the anchor; null = yes for APB, no for Star (Star's anchor is the plain first block).</summary>
    public bool? EmbedQuestion { get; init; }
    /// <summary>Model head counts; needed to validate Ulysses.</summary>
    public int? NumHeads { get; init; }
    public int? NumKvHeads { get; init; }
}
