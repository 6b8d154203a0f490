using ApbCluster.Contracts;
using ApbCluster.Model.Config;
using ApbCluster.Parallel.Plan;
using ApbCluster.Parallel.Serving;

namespace ApbCluster.Engine;

/// <summary>
/// The one place a query's plan is made: the router plans (with the served defaults: cost-balanced blocks for apb
/// and star, anchor = block / 8) and sends the result in every RunShard; each host re-creates that exact plan
/// from it, so a host never re-decides what the router chose.
/// </summary>
public static class QueryPlanning
{
    public static ParallelMode ToParallel(AttentionMode mode) => mode switch
    {
        AttentionMode.Dense => ParallelMode.Dense,
        AttentionMode.Ring => ParallelMode.Ring,
        AttentionMode.Ulysses => ParallelMode.Ulysses,
        AttentionMode.Star => ParallelMode.Star,
        AttentionMode.Apb => ParallelMode.Apb,
        _ => throw new PlanException("mode", $"unknown attention mode {(int)mode}"),
    };

    public static AttentionMode ToAttention(ParallelMode mode) => mode switch
    {
        ParallelMode.Dense => AttentionMode.Dense,
        ParallelMode.Ring => AttentionMode.Ring,
        ParallelMode.Ulysses => AttentionMode.Ulysses,
        ParallelMode.Star => AttentionMode.Star,
        ParallelMode.Apb => AttentionMode.Apb,
        _ => throw new ArgumentOutOfRangeException(nameof(mode)),
    };

    /// <summary>The caller's split, or the router's default when it left it to the router.</summary>
    public static BlockSplit ToSplit(BlockSplitMode requested, BlockSplit routerDefault) => requested switch
    {
        BlockSplitMode.Balanced => BlockSplit.Balanced,
        BlockSplitMode.Equal => BlockSplit.Equal,
        _ => routerDefault,
    };

    public static BlockSplitMode ToContract(BlockSplit split) => split == BlockSplit.Balanced ? BlockSplitMode.Balanced : BlockSplitMode.Equal;

    /// <summary>The router's plan (<see cref="ServingPlan"/>, as `apb ask` makes it). <paramref name="anchorLength"/> /
    /// <paramref name="passingLength"/>: null for the defaults.</summary>
    public static ApbPlan Plan(AttentionMode mode, int hosts, int documentLength, int questionLength, int templateOffset,
        int? anchorLength, int? passingLength, BlockSplit split, ModelConfig? model) =>
        ServingPlan.Create(ToParallel(mode), hosts, documentLength, questionLength, templateOffset,
            new PlanChoices { AnchorLength = anchorLength, PassingLength = passingLength, Split = split }, model);

    /// <summary>What a host needs of the router's plan.</summary>
    public static ShardPlan ToShard(ApbPlan plan) =>
        new(plan.Blocks.Select(b => b.Length).ToArray(), plan.AnchorLength, plan.PassingLength, plan.TemplateOffset, plan.EmbedQuestion);

    /// <summary>A host's copy of the router's plan for <paramref name="hosts"/> ranks, validated again (a malformed
    /// RunShard fails its query, not the host).</summary>
    public static ApbPlan FromShard(ShardWork work, int hosts, ModelConfig? model) => ApbPlan.Create(new PlanRequest
    {
        Mode = ToParallel(work.Mode),
        Hosts = hosts,
        DocumentLength = work.Document.Count,
        QuestionLength = work.Question.Count,
        TemplateOffset = work.Plan.TemplateOffset,
        EmbedQuestion = work.Plan.EmbedQuestion,
        AnchorLength = work.Plan.AnchorLength,
        PassingLength = work.Plan.PassingLength,
        BlockLengths = work.Plan.BlockLengths,
        NumHeads = model?.NumHeads,
        NumKvHeads = model?.NumKvHeads,
    });
}
