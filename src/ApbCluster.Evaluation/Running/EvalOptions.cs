using ApbCluster.Evaluation.Tasks;

namespace ApbCluster.Evaluation.Running;

/// <summary>What to evaluate: every task x length x hosts x mode, <see cref="Samples"/> samples per cell.</summary>
public sealed record EvalOptions
{
    public required IReadOnlyList<EvalTask> Tasks { get; init; }
    /// <summary>Prompt lengths in tokens (document + question).</summary>
    public required IReadOnlyList<int> Lengths { get; init; }
    public required IReadOnlyList<int> Hosts { get; init; }
    public required IReadOnlyList<EvalMode> Modes { get; init; }
    public int Samples { get; init; } = 10;
    public long Seed { get; init; }
    /// <summary>With <see cref="ShardCount"/> N &gt; 1, this run takes only samples i with i mod N = <see cref="ShardIndex"/>
    /// (same seeds and depths as the whole run), so N processes can share the work and `apb eval merge` joins them.</summary>
    public int ShardIndex { get; init; }
    public int ShardCount { get; init; } = 1;
    /// <summary>Wall time the run should end by (null: none): after the first sample, no sample starts that would end
    /// past it at the average pace so far. Samples run in order, each through every task, length, H and mode, so a
    /// run cut short still has the same samples in every cell; the report says so.</summary>
    public TimeSpan? TimeLimit { get; init; }
    /// <summary>APB's anchor length as a fraction of the block: l_a = l_b / this (the served default 8; the paper's 4).
    /// Star keeps its whole-block anchor; apb-no-anchor keeps none.</summary>
    public int AnchorDivisor { get; init; } = ApbCluster.Parallel.Plan.ApbPlan.DefaultAnchorDivisor;
    /// <summary>apb and star blocks; null = the served default (cost-balanced).</summary>
    public ApbCluster.Parallel.Plan.BlockSplit? Split { get; init; }
    /// <summary>CritiPrefill's parameters for the dense-criti and apb-criti modes.</summary>
    public ApbCluster.Parallel.Kernels.CritiPrefillOptions CritiPrefill { get; init; } = new();
    /// <summary>ShadowKV's parameters for the dense-shadowkv and apb-shadowkv modes.</summary>
    public ApbCluster.Model.KvStores.ShadowKvOptions ShadowKv { get; init; } = new();
    /// <summary>Per-run deadline for the virtual hosts (a stuck collective fails instead of hanging).</summary>
    public TimeSpan Deadline { get; init; } = TimeSpan.FromMinutes(10);
}
