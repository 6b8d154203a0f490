namespace ApbCluster.Benchmarks;

/// <summary>One prefill configuration measured: best and median of the repeats, all repeats, throughput, the GPU
/// memory high-water of the process that ran only this configuration (weights included), and per-phase milliseconds
/// (each phase's slowest host, when the mode has phases). With `--ttft`, also the time to the first token (prefill,
/// the question pass and the first decode step with its broadcast, as a query's time to first token).</summary>
public sealed record PrefillMeasurement(
    string Mode,
    int Tokens,
    int Hosts,
    int Gpus,
    double Seconds,
    IReadOnlyList<double> AllSeconds,
    double TokensPerSecond,
    double PeakGpuGiB,
    IReadOnlyDictionary<string, double> PhaseMs,
    IReadOnlyDictionary<string, object>? Plan = null,
    double? TtftSeconds = null,
    IReadOnlyList<double>? AllTtftSeconds = null)
{
    public double MedianSeconds { get; init; }
    public double? MedianTtftSeconds { get; init; }
}

/// <summary>Decode steps at a given context: milliseconds per step (one token for each of <see cref="Batch"/>
/// sequences decoding together), aggregate tokens per second, and the device memory in use while they ran.</summary>
public sealed record DecodeMeasurement(string Mode, int Context, int Steps, double MsPerTokenMedian, double MsPerTokenMean)
{
    public int Batch { get; init; } = 1;
    public double TokensPerSecond { get; init; }
    public string Kv { get; init; } = "full";
    public double GpuGiB { get; init; }
    /// <summary>Sequences of this context that fit beside the weights and one more prefill (<see cref="DecodeBench.MaxResident"/>).</summary>
    public int MaxResident { get; init; }
    /// <summary>ShadowKV: what the batch's stores keep on the device and in host memory.</summary>
    public double StoreGiB { get; init; }
    public double HostGiB { get; init; }
    /// <summary>Per step, milliseconds of each phase (qkv, attention, mlp, logits) in a profiled run that synchronises
    /// around each phase.</summary>
    public IReadOnlyDictionary<string, double>? PhaseMs { get; init; }
}

/// <summary>Everything one `apb bench` run measured, with what it ran on.</summary>
public sealed record BenchReport(
    string Shape,
    string Dtype,
    string Hardware,
    string Command,
    DateTimeOffset Started,
    List<PrefillMeasurement> Prefill,
    List<DecodeMeasurement> Decode,
    List<string> Notes)
{
    /// <summary>Concurrent queries on virtual hosts, decode batched across them or not (<see cref="ServeBench"/>).</summary>
    public List<ServeMeasurement> Serve { get; init; } = [];
}
