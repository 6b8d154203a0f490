namespace ApbCluster.Parallel.Plan;

/// <summary>What the caller asks for; <see cref="ApbPlan.Create"/> fills the defaults and validates.</summary>
public sealed record PlanRequest
{
    public required int DocumentLength { get; init; }
    public int QuestionLength { get; init; }
    public required int Hosts { get; init; }
    public ParallelMode Mode { get; init; } = ParallelMode.Apb;
    /// <summary>l_a; null = the paper's default (block/<see cref="AnchorDivisor"/> for APB, a block for Star, 0 otherwise).</summary>
    public int? AnchorLength { get; init; }
    /// <summary>l_p per KV head per host; null = block/8 for APB, 0 otherwise.</summary>
    public int? PassingLength { get; init; }
    /// <summary>Lossless APB: pass every token of every earlier block (l_p = l_b).</summary>
    public bool PassAll { get; init; }
    /// <summary>4 (the paper's 128K setting) or 8.</summary>
    public int AnchorDivisor { get; init; } = 4;
    /// <summary>Unequal blocks so every host's attention + MLP cost is about equal (APB/Star only).</summary>
    public bool Balanced { get; init; }
    public CostModel? Cost { get; init; }
    /// <summary>Where the question goes inside the anchor: after the chat template's first tokens (16 for Llama 3).</summary>
    public int TemplateOffset { get; init; } = 16;
    /// <summary>Embed the question in the anchor; null = yes for APB, no for Star (Star's anchor is the plain first block).</summary>
    public bool? EmbedQuestion { get; init; }
    /// <summary>Model head counts; needed to validate Ulysses.</summary>
    public int? NumHeads { get; init; }
    public int? NumKvHeads { get; init; }
}
