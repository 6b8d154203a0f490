using ApbCluster.Model.Forward;
using ApbCluster.Model.Layers;
using ApbCluster.Parallel.Collectives;
using ApbCluster.Parallel.Kernels;
using ApbCluster.Parallel.Plan;
using static TorchSharp.torch;

namespace ApbCluster.Parallel.Strategies;

/// <summary>
/// A dense prompt prefill into the model's own KV cache through <see cref="DenseStrategy"/> (one host, this thread),
/// so one-device generation and the dense benchmark prefill with the same attention choice (full or CritiPrefill)
/// as every other path; decode then continues with the model's KV-cached forward.
/// </summary>
public static class DensePrefill
{
    /// <summary>Prefills <paramref name="ids"/> [1, S] into the empty <paramref name="cache"/>; returns the last
    /// position's logits [1, 1, vocab] fp32.</summary>
    public static Tensor IntoCache(LlamaModel model, Tensor ids, KvCache cache, CritiPrefillOptions? critiPrefill, PhaseTimer? timer = null)
    {
        if (ids.dim() != 2 || ids.shape[0] != 1) throw new ArgumentException($"dense prefill takes ids [1, S], got [{string.Join(", ", ids.shape)}].");
        if (cache.Length != 0) throw new ArgumentException("dense prefill fills an empty KV cache.");
        var document = ids.cpu().data<long>().ToArray();
        var plan = ApbPlan.Create(new PlanRequest { Mode = ParallelMode.Dense, Hosts = 1, DocumentLength = document.Length, QuestionLength = 0 });
        using var rank = InProcessCollectiveGroup.Create(1, TimeSpan.FromHours(1), [model.Device])[0];
        using var scope = NewDisposeScope();
        using var shard = new DenseStrategy().Prefill(rank, model, plan,
            new PrefillRequest(document, []) { KeepHidden = true, CritiPrefill = critiPrefill }, timer);
        for (int i = 0; i < shard.Keys.Length; i++) cache.Append(i, shard.Keys[i], shard.Values[i]);
        return model.Logits(shard.Hidden!.narrow(1, document.Length - 1, 1)).MoveToOuterDisposeScope();
    }
}
