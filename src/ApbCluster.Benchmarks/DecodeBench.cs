using ApbCluster.Model.Forward;
using ApbCluster.Model.KvStores;
using ApbCluster.Model.Layers;
using TorchSharp;
using static TorchSharp.torch;

namespace ApbCluster.Benchmarks;

/// <summary>
/// Batched decode: <c>max(batches)</c> sequences, each prefilled from its own random prompt of
/// <paramref name="context"/> tokens, decode together through <see cref="BatchDecoder"/>; timed at the largest batch
/// first, then with sequences released down to each smaller batch (so one set of prefills serves every batch size).
/// With ShadowKV each prompt is converted to a <see cref="ShadowKvStore"/> after its prefill and the pool keeps only
/// the decoded tokens. A batch of 0 stands for "as many as fit" (<see cref="MaxResident"/>).
/// </summary>
public static class DecodeBench
{
    private const int WarmSteps = 3, ProfileSteps = 4;

    public static List<DecodeMeasurement> Batched(LlamaModel model, int context, IReadOnlyList<int> batches, int steps, long seed,
        Action<string>? progress = null, ShadowKvOptions? shadowKv = null)
    {
        if (batches.Count == 0 || batches.Any(b => b < 0)) throw new ArgumentException("decode batches must be at least 1 (0: as many as fit).");
        if (steps < 1) throw new ArgumentException("at least one decode step to time.");
        long decoded = (long)batches.Distinct().Count() * (steps + WarmSteps + ProfileSteps) + 1;
        long capacity = (shadowKv is null ? context : 0) + decoded;
        int most = MaxResident(model, context, capacity, shadowKv);
        var order = batches.Select(b => b == 0 ? most : b).Distinct().OrderDescending().ToArray();
        if (order[0] > most) progress?.Invoke($"batch {order[0]} may not fit: about {most} sequences of {context} tokens fit beside the weights and one prefill");
        Func<KvCache, IKvStore>? store = shadowKv is null ? null : cache => ShadowKvStore.Build(
            Enumerable.Range(0, cache.NumLayers).Select(cache.Keys).ToArray(), Enumerable.Range(0, cache.NumLayers).Select(cache.Values).ToArray(),
            Enumerable.Range(0, (int)cache.Length).Select(i => (long)i).ToArray(), model, shadowKv);
        using var decoder = new BatchDecoder(model, order[0], capacity, store);
        for (int i = 0; i < order[0]; i++)
        {
            progress?.Invoke($"prefill {i + 1}/{order[0]} of {context} tokens");
            using var ids = DenseBench.RandomIds(model, context, seed + i);
            decoder.Admit(ids.cpu().data<long>().ToArray());
        }
        var results = new List<DecodeMeasurement>();
        foreach (int batch in order)
        {
            foreach (var slot in decoder.Running.Order().Skip(batch).ToArray()) decoder.Release(slot);
            for (int i = 0; i < WarmSteps; i++) decoder.Step();
            var perStep = new List<double>();
            for (int i = 0; i < steps; i++) perStep.Add(GpuClock.Seconds(model.Device, () => decoder.Step()));
            perStep.Sort();
            double median = perStep[perStep.Count / 2];
            // The profile: a few more steps with each phase synchronised (the host's launch time shows as the gap
            // between the step's wall time and the sum the device needs when phases do not overlap).
            var timer = new PhaseTimer(true, model.Device);
            for (int i = 0; i < ProfileSteps; i++) decoder.Step(timer);
            results.Add(new DecodeMeasurement("dense", context, steps, 1000 * median, 1000 * perStep.Average())
            {
                Batch = batch,
                Kv = shadowKv is null ? "full" : "shadowkv",
                MaxResident = most,
                StoreGiB = decoder.StoreBytes.Device / (double)(1L << 30),
                HostGiB = decoder.StoreBytes.Host / (double)(1L << 30),
                TokensPerSecond = batch / median,
                GpuGiB = GpuClock.UsedGiB(model.Device),
                PhaseMs = timer.Totals.ToDictionary(kv => kv.Key, kv => Math.Round(kv.Value.TotalMilliseconds / ProfileSteps, 3)),
            });
            progress?.Invoke($"batch {batch}: {1000 * median:F2} ms/step, {batch / median:F0} tokens/s");
        }
        return results;
    }

    /// <summary>
    /// Sequences of <paramref name="context"/> tokens that fit on the device beside the weights while one more prompt can
    /// still be prefilled: (free memory - one prefill's working set) / one sequence's bytes, where a sequence is its pool
    /// slot (full KV: the whole context; ShadowKV: only decoded tokens) plus, with ShadowKV, its store, and the prefill
    /// working set is one full-KV prompt (ShadowKV converts from it) plus the layer activations (about 2 x
    /// [context, intermediate] in the MLP). On the CPU: the figure for 64 GiB, a nominal budget.
    /// </summary>
    public static int MaxResident(LlamaModel model, int context, long slotCapacity, ShadowKvOptions? shadowKv)
    {
        var c = model.Config;
        long elem = model.Dtype is ScalarType.Float32 ? 4 : 2;
        long free = model.Device.type == DeviceType.CUDA
            ? (long)((GpuClock.TotalGiB(model.Device) - GpuClock.UsedGiB(model.Device)) * (1L << 30))
            : 64L << 30;
        long activations = 3L * context * c.IntermediateSize * elem + 8L * context * c.HiddenSize * elem;
        long prefill = activations + (shadowKv is null ? 0 : KvPool.SlotBytes(c, context, model.Dtype));
        long perSequence = KvPool.SlotBytes(c, slotCapacity, model.Dtype) + (shadowKv is null ? 0 : ShadowKvStore.EstimateBytes(context, c, shadowKv).Device);
        return (int)Math.Max(1, (free - prefill) / perSequence);
    }
}
