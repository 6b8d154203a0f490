using ApbCluster.Model.Forward;
using ApbCluster.Model.Layers;
using ApbCluster.Parallel.Collectives;
using ApbCluster.Parallel.Compression;
using ApbCluster.Parallel.Phase2;
using ApbCluster.Parallel.Plan;

namespace ApbCluster.Parallel.Strategies;

/// <summary>Prefill then Phase 2 on every host (each call runs on its own host's thread).</summary>
public static class ParallelRun
{
    public static PrefillStrategy For(ParallelMode mode, ICompressor? compressor = null) => mode switch
    {
        ParallelMode.Dense => new DenseStrategy(),
        ParallelMode.Ring => new RingStrategy(),
        ParallelMode.Ulysses => new UlyssesStrategy(),
        ParallelMode.Star => new StarStrategy(),
        ParallelMode.Apb => new ApbStrategy(compressor),
        _ => throw new ArgumentOutOfRangeException(nameof(mode)),
    };

    /// <summary>One host's whole request: its shard (kept for follow-ups) and the generated tokens.</summary>
    public static (HostShard Shard, Phase2Result Result) Host(ICollective c, LlamaModel model, ApbPlan plan, PrefillStrategy strategy,
        PrefillRequest request, Phase2Options? options = null)
    {
        var timer = new PhaseTimer(options?.Timing == true, model.Device);
        var shard = strategy.Prefill(c, model, plan, request, timer);
        return (shard, Phase2Decoder.Run(c, model, shard, plan.DocumentLength, request.Question, options));
    }

    /// <summary>H virtual hosts in this process sharing one model (weights are read-only).</summary>
    /// <param name="traffic">Counts the bytes every host's collectives move (labels as in <see cref="ICollective"/>).</param>
    public static (HostShard Shard, Phase2Result Result)[] InProcess(LlamaModel model, ApbPlan plan, PrefillStrategy strategy,
        PrefillRequest request, Phase2Options? options = null, TimeSpan? deadline = null, CollectiveTraffic? traffic = null)
    {
        // Grow the RoPE table before the threads start: they only read it then.
        model.Rope.EnsureCapacity(plan.PaddedLength + plan.QuestionLength + (options?.MaxNewTokens ?? 32) + 1);
        // Every rank lives on the model's device: collectives then hand back tensors there (a CPU rank
        // would copy Phase 2's partial outputs off the GPU and the next layer's matmul would fail).
        var devices = Enumerable.Repeat(model.Device, plan.Hosts).ToArray();
        return InProcessCollectiveGroup.Run(plan.Hosts, deadline ?? TimeSpan.FromMinutes(5),
            c => Host(traffic is null ? c : c.WithTraffic(traffic), model, plan, strategy, request, options), devices);
    }
}
