using ApbCluster.Model.Forward;
using System.Diagnostics;
using ApbCluster.Model.Config;
using ApbCluster.Model.Layers;
using ApbCluster.Parallel.Collectives;
using ApbCluster.Parallel.Compression;
using ApbCluster.Parallel.Kernels;
using ApbCluster.Parallel.Phase2;
using ApbCluster.Parallel.Plan;
using ApbCluster.Parallel.Serving;
using ApbCluster.Parallel.Strategies;
using TorchSharp;
using static TorchSharp.torch;

namespace ApbCluster.Benchmarks;

/// <summary>
/// Phase-1 prefill of the parallel modes (ring, ulysses, star, apb) on H hosts spread over the GPUs of this
/// process: one model copy per GPU, one long-lived thread per host (every mode runs on the same warm threads),
/// NCCL between hosts when each has its own GPU, the in-process collective otherwise (several hosts per GPU; their
/// kernels then share that GPU, and the timing run takes turns on it to project one GPU per host).
/// </summary>
public sealed class ParallelBench : IDisposable
{
    private readonly ModelConfig _config;
    private readonly Device[] _hostDevices;
    private readonly Dictionary<int, LlamaModel> _models = [];
    private readonly Dictionary<int, RetainingHeadCompressor> _heads = [];
    private readonly Func<ICollective[]> _connect;
    private ICollective[] _collectives;
    private readonly CollectiveTraffic _traffic = new();
    private readonly RankThreads _threads;
    private readonly bool _sharedGpus;

    public int Hosts => _hostDevices.Length;
    public int Gpus { get; }
    public string Collective { get; }

    public ParallelBench(ModelConfig config, ScalarType dtype, Device[] gpus, int hosts, long seed, TimeSpan? collectiveDeadline = null)
    {
        _config = config;
        Gpus = gpus[0].type == DeviceType.CUDA ? gpus.Length : 0;
        _hostDevices = Enumerable.Range(0, hosts).Select(h => gpus[h * gpus.Length / hosts]).ToArray();
        foreach (var d in gpus)
        {
            _models[d.index] = LlamaModel.CreateRandom(config, d, dtype, seed);
            _heads[d.index] = RetainingHeadCompressor.CreateRandom(config.NumLayers, config.NumHeads * config.HeadDim,
                config.NumKvHeads * config.HeadDim, config.NumKvHeads, seed, d, dtype);
        }
        bool nccl = gpus.Length == hosts && hosts > 1 && gpus[0].type == DeviceType.CUDA;
        // Counted, so each result logs the bytes its collectives moved (passing included).
        var deadline = collectiveDeadline ?? TimeSpan.FromMinutes(2);
        _connect = () => (nccl
                ? NcclCollective.CreateAllInProcess(gpus.Select(g => g.index).ToArray(), deadline)
                : InProcessCollectiveGroup.Create(hosts, deadline, _hostDevices))
            .Select(r => r.WithTraffic(_traffic)).ToArray();
        _collectives = _connect();
        Collective = nccl ? "NCCL" : "in-process";
        _threads = new RankThreads(hosts);
        _sharedGpus = hosts > gpus.Length && gpus[0].type == DeviceType.CUDA;
    }

    /// <summary>The model copy on <paramref name="device"/> (the dense baseline reuses GPU 0's).</summary>
    public LlamaModel ModelOn(Device device) => _models[device.index];

    /// <param name="ttft">Also time prefill to first token (see <see cref="TimeToFirstToken"/>), same plan and prompt.</param>
    /// <param name="critiPrefill">Prune each host's local causal attention with CritiPrefill (mode "apb-criti", ...).</param>
    public PrefillMeasurement Prefill(ParallelMode mode, int tokens, int warmup, int repeats, BenchApbSettings apb, long seed, bool ttft = false,
        CritiPrefillOptions? critiPrefill = null)
    {
        var rng = new Random((int)seed);
        int vocab = Math.Min(_config.VocabSize, 32000);
        var document = Enumerable.Range(0, tokens).Select(_ => (long)rng.Next(vocab)).ToArray();
        var question = Enumerable.Range(0, apb.QuestionTokens).Select(_ => (long)rng.Next(vocab)).ToArray();
        // The plan the cluster serves (the bench measures what users get), with a synthetic question after the
        // Llama 3 template's 16 opening tokens.
        var plan = ServingPlan.Create(mode, Hosts, tokens, question.Length, templateOffset: 16, new PlanChoices
        {
            AnchorDivisor = apb.AnchorDivisor, AnchorLength = apb.AnchorLength, PassingLength = apb.PassingLength, Split = apb.Split,
        }, _config);
        var request = new PrefillRequest(document, question) { CritiPrefill = critiPrefill };
        var times = new List<double>();
        string? retriedAfter = null;
        RunTiming timing;
        IReadOnlyList<TrafficEntry> moved;
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                times.Clear();
                for (int i = 0; i < warmup + repeats; i++)
                {
                    double seconds = RunOnce(mode, plan, request, apb.Kernel);
                    if (i >= warmup) times.Add(seconds);
                }
                // One more run with per-phase timing (it synchronises around every phase, so it is not timed itself),
                // counting the bytes its collectives move.
                _traffic.Reset();
                timing = TimedRun(mode, plan, request, apb.Kernel);
                moved = _traffic.Snapshot();
                break;
            }
            catch (Exception e)
            {
                // A failed collective aborts the communicators: reconnect so this or the next configuration still
                // runs. A second attempt on new communicators is reported in the results (retried_after), never hidden.
                CollectiveRunner.DisposeAll(_collectives);
                _collectives = _connect();
                if (attempt >= 2 || e is not ApbCluster.NativeInterop.CollectiveException) throw;
                retriedAfter = e.Message.Split('\n')[0];
            }
        }
        double best = times.Min();
        double mem = _models.Values.Max(m => GpuClock.UsedGiB(m.Device));
        var planInfo = new Dictionary<string, object>
        {
            ["hosts"] = Hosts, ["collective"] = Collective, ["block"] = plan.BlockLength, ["anchor"] = plan.AnchorLength,
            ["passing"] = plan.PassingLength, ["split"] = plan.Split.ToString().ToLowerInvariant(), ["padding"] = plan.Padding,
            ["apb_kernel"] = apb.Kernel.ToString().ToLowerInvariant(),
            ["blocks"] = plan.Blocks.Select(b => b.Length).ToArray(),
            ["collective_bytes_sent"] = moved.Sum(e => e.BytesSent),
            ["passing_bytes_sent"] = moved.Where(e => e.What.Contains("passing block")).Sum(e => e.BytesSent),
            ["host_phases_ms"] = timing.HostPhases,
            ["host_compute_ms"] = timing.ComputeMs.Select(Round).ToArray(),
            ["host_wait_ms"] = timing.WaitMs.Select(Round).ToArray(),
            ["timing_run"] = _sharedGpus
                ? "hosts took turns on their shared GPU; wait = time a host would idle for the slowest with one GPU each"
                : "hosts ran in parallel; wait = idle for the slowest host, transfer = the rest of the time in collectives",
        };
        if (_sharedGpus) planInfo["projected_seconds_one_gpu_per_host"] = Math.Round(timing.ProjectedSeconds, 4);
        else planInfo["host_transfer_ms"] = timing.TransferMs.Select(Round).ToArray();
        if (retriedAfter != null) planInfo["retried_after"] = retriedAfter;
        if (critiPrefill != null) planInfo["prefill_attention"] = critiPrefill.ToString();
        List<double>? ttfts = null;
        if (ttft)
        {
            // A failing time-to-first-token run (Phase 2) must not lose the prefill figures measured above.
            try { ttfts = TimeToFirstToken(mode, plan, request, warmup, repeats); }
            catch (Exception e) { planInfo["ttft_error"] = e.Message.Split('\n')[0]; }
        }
        return new PrefillMeasurement(mode.ToString().ToLowerInvariant() + (critiPrefill is null ? "" : "-criti"), tokens, Hosts, Gpus, best, times, tokens / best, mem, timing.Phases, planInfo,
            ttfts?.Min(), ttfts) { MedianSeconds = Median(times), MedianTtftSeconds = ttfts is null ? null : Median(ttfts) };
    }

    /// <summary>
    /// Prefill to first token on every host, the way a cluster query gets it (the engine's ParallelRun.Host):
    /// Phase 1, then Phase 2's question pass, the last host's first sampled token and its broadcast. Seconds of the
    /// timed repeats (after <paramref name="warmup"/> untimed runs).
    /// </summary>
    private List<double> TimeToFirstToken(ParallelMode mode, ApbPlan plan, PrefillRequest request, int warmup, int repeats)
    {
        var options = new Phase2Options { MaxNewTokens = 1 };
        foreach (var m in _models.Values) lock (m.Rope) m.Rope.EnsureCapacity(plan.PaddedLength + plan.QuestionLength + 2);
        var times = new List<double>();
        for (int i = 0; i < warmup + repeats; i++)
        {
            foreach (var m in _models.Values) GpuClock.Sync(m.Device);
            var clock = Stopwatch.StartNew();
            _threads.Run(_collectives, c =>
            {
                var model = _models[_hostDevices[c.Rank].index];
                var strategy = ParallelRun.For(mode, mode == ParallelMode.Apb ? _heads[_hostDevices[c.Rank].index] : null);
                var (shard, result) = ParallelRun.Host(c, model, plan, strategy, request, options); // returns once the token is known
                shard.Dispose();
                return result.Tokens.Length;
            });
            if (i >= warmup) times.Add(clock.Elapsed.TotalSeconds);
        }
        return times;
    }

    /// <summary>One prefill on every host: wall time until the slowest host is done.</summary>
    private double RunOnce(ParallelMode mode, ApbPlan plan, PrefillRequest request, ApbKernel apbKernel)
    {
        foreach (var m in _models.Values) GpuClock.Sync(m.Device);
        var clock = Stopwatch.StartNew();
        _threads.Run(_collectives, c =>
        {
            var device = _hostDevices[c.Rank];
            using var shard = Strategy(mode, device, apbKernel).Prefill(c, _models[device.index], plan, request);
            GpuClock.Sync(device);
            return 0;
        });
        return clock.Elapsed.TotalSeconds;
    }

    private sealed record RunTiming(Dictionary<string, double> Phases, Dictionary<string, double>[] HostPhases,
        double[] ComputeMs, double[] WaitMs, double[] TransferMs, double ProjectedSeconds);

    /// <summary>One prefill with per-phase timers and a collective timeline. The phases reported are each phase's
    /// slowest host (the compressor's is then a host that scores, not the last host, which sends zeros).</summary>
    private RunTiming TimedRun(ParallelMode mode, ApbPlan plan, PrefillRequest request, ApbKernel apbKernel)
    {
        var timeline = new CollectiveTimeline(Hosts, exclusive: _sharedGpus);
        var timed = _collectives.Select(timeline.Wrap).ToArray();
        var timers = _threads.Run(timed, c =>
        {
            var device = _hostDevices[c.Rank];
            var timer = new PhaseTimer(true, device);
            timeline.Begin(c.Rank, device);
            try
            {
                using var shard = Strategy(mode, device, apbKernel).Prefill(c, _models[device.index], plan, request, timer);
            }
            finally { timeline.End(c.Rank, device); }
            return timer;
        });
        var hosts = timers.Select(t => t.Totals.ToDictionary(kv => kv.Key, kv => Round(kv.Value.TotalMilliseconds))).ToArray();
        var phases = hosts.SelectMany(h => h.Keys).Distinct().ToDictionary(k => k, k => hosts.Max(h => h.GetValueOrDefault(k)));
        var (compute, wait, transfer, projected) = timeline.Summarise();
        return new RunTiming(phases, hosts, compute, wait, transfer, projected);
    }

    private PrefillStrategy Strategy(ParallelMode mode, Device device, ApbKernel apbKernel) => mode == ParallelMode.Apb
        ? new ApbStrategy(_heads[device.index]) { Kernel = apbKernel }
        : ParallelRun.For(mode);

    private static double Round(double ms) => Math.Round(ms, 1);

    internal static double Median(IReadOnlyList<double> xs)
    {
        var s = xs.Order().ToArray();
        return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }

    public void Dispose()
    {
        CollectiveRunner.DisposeAll(_collectives);
        _threads.Dispose();
        foreach (var m in _models.Values) m.Dispose();
    }
}

/// <summary>APB lengths for a bench run: null = the served defaults (anchor = block/divisor, passing = block/8, balanced split).</summary>
public sealed record BenchApbSettings(int AnchorDivisor = ApbPlan.DefaultAnchorDivisor, int? AnchorLength = null, int? PassingLength = null,
    BlockSplit? Split = null, int QuestionTokens = 64, ApbKernel Kernel = ApbKernel.Merge);
