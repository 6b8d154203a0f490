using ApbCluster.Model.Config;
using ApbCluster.Parallel.Plan;

namespace ApbCluster.Parallel.Serving;

/// <summary>What a caller may choose about a plan (null: the served default). Everything else follows from the
/// prompt, the hosts and the model.</summary>
public sealed record PlanChoices
{
    public int? AnchorLength { get; init; }
    public int? PassingLength { get; init; }
    public bool PassAll { get; init; }
    /// <summary>null: balanced for apb and star on several hosts (equal when passing everything).</summary>
    public BlockSplit? Split { get; init; }
    public int AnchorDivisor { get; init; } = ApbPlan.DefaultAnchorDivisor;
    /// <summary>null: embedded for apb, not for star.</summary>
    public bool? EmbedQuestion { get; init; }
}

/// <summary>
/// The plan every serving path makes (`apb ask`, `apb eval`, `apb bench`, the cluster's router): the same prompt,
/// hosts and choices give the same blocks everywhere, cost-balanced by the model's calibrated cost.
/// </summary>
public static class ServingPlan
{
    public static ApbPlan Create(ParallelMode mode, int hosts, int documentLength, int questionLength, int templateOffset,
        PlanChoices choices, ModelConfig? model)
    {
        bool anchored = mode is ParallelMode.Apb or ParallelMode.Star;
        if (hosts == 1 && anchored)
            // One host: nothing to anchor or pass; APB and star are dense attention there.
            return ApbPlan.Create(new PlanRequest
            {
                Mode = mode, Hosts = 1, DocumentLength = documentLength, QuestionLength = questionLength,
                AnchorLength = 0, PassingLength = 0, TemplateOffset = templateOffset,
            });
        return ApbPlan.Create(new PlanRequest
        {
            Mode = mode,
            Hosts = hosts,
            DocumentLength = documentLength,
            QuestionLength = questionLength,
            TemplateOffset = templateOffset,
            AnchorLength = choices.AnchorLength,
            PassingLength = choices.PassingLength,
            PassAll = choices.PassAll,
            AnchorDivisor = choices.AnchorDivisor,
            EmbedQuestion = choices.EmbedQuestion,
            // The split is a choice of the anchored modes; the others always split equally.
            Split = anchored ? choices.Split : null,
            Cost = model is null ? null : CostModel.For(model),
            NumHeads = model?.NumHeads,
            NumKvHeads = model?.NumKvHeads,
        });
    }
}
