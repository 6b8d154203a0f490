using ApbCluster.Model.Forward;
using ApbCluster.Model.Layers;
using ApbCluster.Parallel.Kernels;
using ApbCluster.Parallel.Strategies;
using TorchSharp;
using static TorchSharp.torch;

namespace ApbCluster.Benchmarks;

/// <summary>Dense (one device) prefill and decode, the baseline every parallel mode is compared with.</summary>
public static class DenseBench
{
    /// <summary>Prefill of <paramref name="tokens"/> random ids into a KV cache, returning only the last
    /// position's logits (as a serving system does before its first decode step). With <paramref name="critiPrefill"/>
    /// ("dense-criti") the prefill is `apb generate`'s CritiPrefill path (<see cref="DensePrefill"/>), and one more,
    /// untimed run with per-phase timers reports qkv, criticality, attention and mlp.</summary>
    public static PrefillMeasurement Prefill(LlamaModel model, int tokens, int warmup, int repeats, long seed, CritiPrefillOptions? critiPrefill = null)
    {
        var times = new List<double>();
        using var cache = model.CreateCache(1, tokens);
        using var ids = RandomIds(model, tokens, seed);
        void Once(PhaseTimer? timer)
        {
            using var logits = critiPrefill is null
                ? model.Forward(ids, cache, lastPositionOnly: true)
                : DensePrefill.IntoCache(model, ids, cache, critiPrefill, timer);
        }
        for (int i = 0; i < warmup + repeats; i++)
        {
            cache.Reset();
            double s = GpuClock.Seconds(model.Device, () => Once(null));
            if (i >= warmup) times.Add(s);
        }
        var phases = new Dictionary<string, double>();
        Dictionary<string, object>? plan = null;
        if (critiPrefill is not null)
        {
            cache.Reset();
            var timer = new PhaseTimer(true, model.Device);
            Once(timer);
            foreach (var (phase, t) in timer.Totals) phases[phase] = Math.Round(t.TotalMilliseconds, 1);
            plan = new Dictionary<string, object> { ["prefill_attention"] = critiPrefill.ToString() };
        }
        double best = times.Min();
        return new PrefillMeasurement(critiPrefill is null ? "dense" : "dense-criti", tokens, Hosts: 1, Gpus: model.Device.type == DeviceType.CUDA ? 1 : 0,
            best, times, tokens / best, GpuClock.UsedGiB(model.Device), phases, plan) { MedianSeconds = ParallelBench.Median(times) };
    }

    internal static Tensor RandomIds(LlamaModel model, int tokens, long seed)
    {
        using var g = new Generator((ulong)seed, CPU);
        return randint(0, Math.Min(model.Config.VocabSize, 32000), new long[] { 1, tokens }, dtype: ScalarType.Int64, generator: g).to(model.Device);
    }
}
