using ApbCluster.Model.Forward;
using ApbCluster.Model.Layers;
using static TorchSharp.torch;

namespace ApbCluster.Benchmarks;

/// <summary>
/// Batched decode: <c>max(batches)</c> sequences, each prefilled from its own random prompt of
/// <paramref name="context"/> tokens, decode together through <see cref="BatchDecoder"/>; timed at the largest batch
/// first, then with sequences released down to each smaller batch (so one set of prefills serves every batch size).
/// </summary>
public static class DecodeBench
{
    private const int WarmSteps = 3, ProfileSteps = 4;

    public static List<DecodeMeasurement> Batched(LlamaModel model, int context, IReadOnlyList<int> batches, int steps, long seed, Action<string>? progress = null)
    {
        if (batches.Count == 0 || batches.Any(b => b < 1)) throw new ArgumentException("decode batches must be at least 1.");
        if (steps < 1) throw new ArgumentException("at least one decode step to time.");
        var order = batches.Distinct().OrderDescending().ToArray();
        long capacity = context + (long)order.Length * (steps + WarmSteps + ProfileSteps) + 1;
        using var decoder = new BatchDecoder(model, order[0], capacity);
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
                TokensPerSecond = batch / median,
                GpuGiB = GpuClock.UsedGiB(model.Device),
                PhaseMs = timer.Totals.ToDictionary(kv => kv.Key, kv => Math.Round(kv.Value.TotalMilliseconds / ProfileSteps, 3)),
            });
            progress?.Invoke($"batch {batch}: {1000 * median:F2} ms/step, {batch / median:F0} tokens/s");
        }
        return results;
    }
}
