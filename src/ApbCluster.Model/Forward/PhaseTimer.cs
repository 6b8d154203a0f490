using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace ApbCluster.Model.Forward;

/// <summary>
/// Per-host, per-phase wall time (qkv, compressor, passing, criticality, attention, mlp). Disabled timers cost
/// nothing; enabled ones synchronise the CUDA device around each phase so that asynchronous kernels are
/// charged to the phase that launched them.
/// </summary>
public sealed class PhaseTimer(bool enabled, Device? device = null)
{
    public const string Qkv = "qkv", Compressor = "compressor", Passing = "passing", Attention = "attention", Mlp = "mlp",
        Criticality = "criticality";

    private readonly Dictionary<string, TimeSpan> _totals = new();
    private readonly Device? _syncDevice = device?.type == DeviceType.CUDA ? device : null;

    public static PhaseTimer Disabled => new(false);
    public bool Enabled { get; } = enabled;
    public IReadOnlyDictionary<string, TimeSpan> Totals => _totals;

    public Scope Measure(string phase)
    {
        if (!Enabled) return default;
        Sync();
        return new Scope(this, phase, Stopwatch.GetTimestamp());
    }

    public void Add(string phase, TimeSpan t) => _totals[phase] = _totals.GetValueOrDefault(phase) + t;

    // This host's device, named: a bare synchronize() waits on the thread's *current* device, which for a new
    // thread is GPU 0; with two GPUs in one process, rank 1 then waited on rank 0's NCCL kernel, which waited
    // on rank 1: a deadlock until the collective deadline (docs/benchmarks/parallel-h200-2gpu/fourth-run).
    private void Sync()
    {
        if (_syncDevice is { } d) cuda.synchronize(d);
    }

    public readonly struct Scope : IDisposable
    {
        private readonly PhaseTimer? _owner;
        private readonly string _phase;
        private readonly long _start;

        internal Scope(PhaseTimer owner, string phase, long start) => (_owner, _phase, _start) = (owner, phase, start);

        public void Dispose()
        {
            if (_owner is null) return;
            _owner.Sync();
            _owner.Add(_phase, Stopwatch.GetElapsedTime(_start));
        }
    }
}
