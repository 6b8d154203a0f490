using ApbCluster.Contracts;
using ApbCluster.Model.Config;
using ApbCluster.Parallel.Plan;

namespace ApbCluster.Runtime.Engine;

/// <summary>
/// The one place a query's plan is made, used by the router (to validate and summarise) and by every
/// host (to run its rank): the same inputs give the same plan everywhere.
/// </summary>
public static class QueryPlanning
{
    /// <summary>The compressor used when the caller names none (training-free, works for any model).</summary>
    public const string DefaultCompressor = "query-aware";

    public static ParallelMode ToParallel(AttentionMode mode) => mode switch
    {
        AttentionMode.Dense => ParallelMode.Dense,
        AttentionMode.Ring => ParallelMode.Ring,
        AttentionMode.Ulysses => ParallelMode.Ulysses,
        AttentionMode.Star => ParallelMode.Star,
        AttentionMode.Apb => ParallelMode.Apb,
        _ => throw new PlanException("mode", $"unknown attention mode {(int)mode}"),
    };

    /// <param name="anchorLength">null: the paper's default for the mode.</param>
    public static ApbPlan Plan(AttentionMode mode, int hosts, int documentLength, int questionLength,
        int? anchorLength, int? passingLength, ModelConfig? model) =>
        ApbPlan.Create(new PlanRequest
        {
            Mode = ToParallel(mode),
            Hosts = hosts,
            DocumentLength = documentLength,
            QuestionLength = questionLength,
            AnchorLength = anchorLength,
            PassingLength = passingLength,
            NumHeads = model?.NumHeads,
            NumKvHeads = model?.NumKvHeads,
        });
}
