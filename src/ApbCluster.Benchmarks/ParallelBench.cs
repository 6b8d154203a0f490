using System.Diagnostics;
using ApbCluster.Model.Config;
using ApbCluster.Model.Layers;
using ApbCluster.Parallel.Collectives;
using ApbCluster.Parallel.Compression;
using ApbCluster.Parallel.Kernels;
using ApbCluster.Parallel.Phase2;
using ApbCluster.Parallel.Plan;
using ApbCluster.Parallel.Strategies;
using TorchSharp;
using static TorchSharp.torch;

namespace ApbCluster.Benchmarks;

/// <summary>
/// Phase-1 prefill of the parallel modes (ring, ulysses, star, apb) on H hosts spread over the GPUs of this
/// process: one model copy per GPU, one thread per host, NCCL between hosts when each has its own GPU,
/// the in-process collective otherwise (several hosts per GPU; their kernels then share that GPU).
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
    }

    /// <summary>The model copy on <paramref name="device"/> (the dense baseline reuses GPU 0's).</summary>
    public LlamaModel ModelOn(Device device) => _models[device.index];

    /// <param name="ttft">Also time prefill to first token (see <see cref="TimeToFirstToken"/>), same plan and prompt.</param>
    public PrefillMeasurement Prefill(ParallelMode mode, int tokens, int warmup, int repeats, BenchApbSettings apb, long seed, bool ttft = false)
    {
        var rng = new Random((int)seed);
        int vocab = Math.Min(_config.VocabSize, 32000);
        var document = Enumerable.Range(0, tokens).Select(_ => (long)rng.Next(vocab)).ToArray();
        var question = Enumerable.Range(0, apb.QuestionTokens).Select(_ => (long)rng.Next(vocab)).ToArray();
        var plan = ApbPlan.Create(new PlanRequest
        {
            DocumentLength = tokens, QuestionLength = question.Length, Hosts = Hosts, Mode = mode,
            AnchorDivisor = apb.AnchorDivisor, AnchorLength = mode == ParallelMode.Apb ? apb.AnchorLength : null,
            PassingLength = mode == ParallelMode.Apb ? apb.PassingLength : null,
            Balanced = apb.Balanced && mode is ParallelMode.Apb or ParallelMode.Star,
            NumHeads = _config.NumHeads, NumKvHeads = _config.NumKvHeads,
        });
        var request = new PrefillRequest(document, question);
        var times = new List<double>();
        string? retriedAfter = null;
        Dictionary<string, double> phases;
        IReadOnlyList<TrafficEntry> moved;
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                times.Clear();
                for (int i = 0; i < warmup + repeats; i++)
                {
                    var (seconds, _) = RunOnce(mode, plan, request, timing: false, apb.Kernel);
                    if (i >= warmup) times.Add(seconds);
                }
                // One more run with per-phase timing (it synchronises around every phase, so it is not timed itself),
                // counting the bytes its collectives move.
                _traffic.Reset();
                (_, phases) = RunOnce(mode, plan, request, timing: true, apb.Kernel);
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
            ["passing"] = plan.PassingLength, ["balanced"] = plan.Balanced, ["padding"] = plan.Padding,
            ["apb_kernel"] = apb.Kernel.ToString().ToLowerInvariant(),
            ["blocks"] = plan.Blocks.Select(b => b.Length).ToArray(),
            ["collective_bytes_sent"] = moved.Sum(e => e.BytesSent),
            ["passing_bytes_sent"] = moved.Where(e => e.What.Contains("passing block")).Sum(e => e.BytesSent),
        };
        if (retriedAfter != null) planInfo["retried_after"] = retriedAfter;
        List<double>? ttfts = null;
        if (ttft)
        {
            // A failing time-to-first-token run (Phase 2) must not lose the prefill figures measured above.
            try { ttfts = TimeToFirstToken(mode, plan, request, warmup, repeats); }
            catch (Exception e) { planInfo["ttft_error"] = e.Message.Split('\n')[0]; }
        }
        return new PrefillMeasurement(mode.ToString().ToLowerInvariant(), tokens, Hosts, Gpus, best, times, tokens / best, mem, phases, planInfo,
            ttfts?.Min(), ttfts);
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
            CollectiveRunner.Run(_collectives, c =>
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

    /// <summary>One prefill on every host; wall time until the slowest host is done, and the slowest host's phases.</summary>
    private (double Seconds, Dictionary<string, double> Phases) RunOnce(ParallelMode mode, ApbPlan plan, PrefillRequest request, bool timing, ApbKernel apbKernel)
    {
        foreach (var m in _models.Values) GpuClock.Sync(m.Device);
        var clock = Stopwatch.StartNew();
        var timers = CollectiveRunner.Run(_collectives, c =>
        {
            var device = _hostDevices[c.Rank];
            var model = _models[device.index];
            var strategy = mode == ParallelMode.Apb
                ? new ApbStrategy(_heads[device.index]) { Kernel = apbKernel }
                : ParallelRun.For(mode);
            var timer = new PhaseTimer(timing, device);
            using var shard = strategy.Prefill(c, model, plan, request, timer);
            GpuClock.Sync(device);
            return timer;
        });
        double seconds = clock.Elapsed.TotalSeconds;
        var slowest = timers.OrderByDescending(t => t.Totals.Values.Sum(x => x.TotalMilliseconds)).First();
        return (seconds, slowest.Totals.ToDictionary(kv => kv.Key, kv => kv.Value.TotalMilliseconds));
    }

    public void Dispose()
    {
        CollectiveRunner.DisposeAll(_collectives);
        foreach (var m in _models.Values) m.Dispose();
    }
}

/// <summary>APB lengths for a bench run: null = the paper's defaults (anchor = block/divisor, passing = block/8).</summary>
public sealed record BenchApbSettings(int AnchorDivisor = 4, int? AnchorLength = null, int? PassingLength = null, bool Balanced = false,
    int QuestionTokens = 64, ApbKernel Kernel = ApbKernel.Merge);
