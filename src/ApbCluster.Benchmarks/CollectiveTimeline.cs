using System.Diagnostics;
using ApbCluster.Parallel.Collectives;
using static TorchSharp.torch;

namespace ApbCluster.Benchmarks;

/// <summary>
/// When each rank entered and left each collective of one run, so a benchmark can tell a rank's own compute from
/// its wait for slower peers. The ranks call the same collectives in the same order, so call j of every rank is
/// one step: rank r's compute before step j is s[r][j] = enter[r][j] - exit[r][j-1], and on hosts that run in
/// parallel it waits max_k s[k][j] - s[r][j] there for the slowest.
/// <para>With <c>exclusive</c> (several ranks sharing one GPU) a rank holds the GPU between collectives and gives it
/// up inside them, after synchronising: each rank's compute is then its own, not its neighbour's kernels, and the
/// run projects what one GPU per rank would take (the sum over steps of the slowest rank's compute).</para>
/// </summary>
public sealed class CollectiveTimeline
{
    // Per call: entered the collective, left it, and (sharing a GPU) got the GPU back: the rank's next compute starts then.
    private readonly List<(long Enter, long Exit, long Resume)>[] _calls;
    private readonly long[] _start, _end;
    private readonly SemaphoreSlim? _gpu;

    public CollectiveTimeline(int ranks, bool exclusive)
    {
        _calls = Enumerable.Range(0, ranks).Select(_ => new List<(long, long, long)>()).ToArray();
        _start = new long[ranks];
        _end = new long[ranks];
        _gpu = exclusive ? new SemaphoreSlim(1, 1) : null;
    }

    public bool Exclusive => _gpu is not null;

    /// <summary>Wraps rank <paramref name="c"/>; call <see cref="Begin"/> and <see cref="End"/> around its run.</summary>
    public ICollective Wrap(ICollective c) => new Timed(c, this);

    public void Begin(int rank, Device device)
    {
        _gpu?.Wait();
        GpuClock.Sync(device);
        _calls[rank].Clear();
        _start[rank] = Stopwatch.GetTimestamp();
    }

    public void End(int rank, Device device)
    {
        GpuClock.Sync(device);
        _end[rank] = Stopwatch.GetTimestamp();
        _gpu?.Release();
    }

    /// <summary>Per rank: compute (ms), wait for slower ranks (ms), time inside collectives beyond that wait (ms);
    /// and the projected wall time with one GPU per rank (seconds), from the slowest rank at each step.</summary>
    public (double[] ComputeMs, double[] WaitMs, double[] TransferMs, double ProjectedSeconds) Summarise()
    {
        int ranks = _calls.Length, steps = _calls.Min(c => c.Count);
        var seg = new double[ranks, steps + 1];
        for (int r = 0; r < ranks; r++)
        {
            long prev = _start[r];
            for (int j = 0; j < steps; j++) { seg[r, j] = Ms(_calls[r][j].Enter - prev); prev = _calls[r][j].Resume; }
            seg[r, steps] = Ms(_end[r] - prev);
        }
        var compute = new double[ranks];
        var wait = new double[ranks];
        var transfer = new double[ranks];
        double projectedMs = 0;
        for (int j = 0; j <= steps; j++)
        {
            double slowest = Enumerable.Range(0, ranks).Max(r => seg[r, j]);
            double slowestTransfer = 0;
            for (int r = 0; r < ranks; r++)
            {
                compute[r] += seg[r, j];
                if (j == steps) continue;
                wait[r] += slowest - seg[r, j];
                // Sharing a GPU, the time inside a collective is mostly other ranks' turns: no transfer to report.
                if (Exclusive) continue;
                double t = Math.Max(0, Ms(_calls[r][j].Exit - _calls[r][j].Enter) - (slowest - seg[r, j]));
                transfer[r] += t;
                slowestTransfer = Math.Max(slowestTransfer, t);
            }
            projectedMs += slowest + slowestTransfer;
        }
        return (compute, wait, transfer, projectedMs / 1000);
    }

    private static double Ms(long ticks) => ticks * 1000.0 / Stopwatch.Frequency;

    private void Enter(int rank, Device device)
    {
        if (_gpu is not null) GpuClock.Sync(device); // this rank's kernels are done before the next rank's turn
        _calls[rank].Add((Stopwatch.GetTimestamp(), 0, 0));
        _gpu?.Release();
    }

    private void Exit(int rank)
    {
        var list = _calls[rank];
        long exit = Stopwatch.GetTimestamp();
        _gpu?.Wait();
        list[^1] = (list[^1].Enter, exit, Stopwatch.GetTimestamp());
    }

    private sealed class Timed(ICollective inner, CollectiveTimeline timeline) : ICollective, IDecoratedCollective
    {
        public ICollective Inner => inner;
        public int Rank => inner.Rank;
        public int WorldSize => inner.WorldSize;
        public Device Device => inner.Device;
        public TimeSpan Deadline => inner.Deadline;

        private T Around<T>(Func<T> call)
        {
            timeline.Enter(Rank, Device);
            try { return call(); }
            finally { timeline.Exit(Rank); }
        }

        public Tensor[] AllGather(Tensor local, string what) => Around(() => inner.AllGather(local, what));
        public void Send(Tensor t, int peer, string what) => Around(() => { inner.Send(t, peer, what); return 0; });
        public Tensor Receive(long[] shape, ScalarType dtype, int peer, string what) => Around(() => inner.Receive(shape, dtype, peer, what));
        public Tensor SendReceive(Tensor send, int sendTo, int receiveFrom, string what) => Around(() => inner.SendReceive(send, sendTo, receiveFrom, what));
        public Tensor Broadcast(Tensor? t, long[] shape, ScalarType dtype, int root, string what) => Around(() => inner.Broadcast(t, shape, dtype, root, what));
        public Tensor[] AllToAll(Tensor[] chunks, string what) => Around(() => inner.AllToAll(chunks, what));
        public void Barrier(string what) => Around(() => { inner.Barrier(what); return 0; });
        public void Dispose() => inner.Dispose();
    }
}
