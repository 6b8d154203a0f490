using System.Runtime.ExceptionServices;
using ApbCluster.Model.Layers;
using static TorchSharp.torch;

namespace ApbCluster.Model.Forward;

/// <summary>
/// Cross-query batching on one device. Sequences that each run their own forward on their own thread, each with its
/// own attention and KV (a host's running queries in Phase 2), take a <see cref="Seat"/>; their layers' dense parts
/// (norm + q/k/v + RoPE, and o-projection + MLP) then run as one call over the rows of every seated sequence that
/// reached the same layer, so the weights are read once per step instead of once per query. Rows are concatenated
/// along the sequence dimension: a question pass batches with single-token steps, and each sequence's attention,
/// cache and cross-host merge are untouched (the batched parts are row-wise, so each row's result is its own).
/// <para>
/// A batch runs as soon as no seated sequence is still computing: each is either waiting here or away (blocked in a
/// collective with other hosts, <see cref="Seat.Away"/>). Waiting only for sequences that are computing cannot
/// deadlock: a host never holds one query's exchange hostage to another query's, so queries spread over different
/// host sets, each host batching its own members at their own pace, never wait on each other in a cycle. The waiting
/// thread that finds the batch ready runs it for everyone (no extra thread, no hand-off for the runner).
/// </para>
/// <para>
/// Queries away on their peers come back a moment later at the next layer part: with a <c>wait</c> the batch holds for
/// them up to that long after its first request (they join if they arrive), then runs without them. The wait is a
/// bound, never a condition, so it cannot deadlock; it trades at most that much latency per layer part for wider
/// batches.
/// </para>
/// </summary>
public sealed class DecodeBatcher(TimeSpan wait = default)
{
    private readonly object _gate = new();
    private readonly long _waitTicks = (long)(wait.TotalSeconds * System.Diagnostics.Stopwatch.Frequency);
    private long _firstPending; // Stopwatch timestamp of the oldest pending request
    private readonly List<Request> _pending = [];
    private int _seated, _away, _inFlight;
    private bool _running;
    private long _calls, _rows, _sharedCalls;
    private int _widest;

    /// <summary>A seat for one sequence's forward passes; dispose it when the sequence ends.</summary>
    public Seat Join()
    {
        lock (_gate) _seated++;
        return new Seat(this);
    }

    /// <summary>Calls run so far (one per layer part per batch), rows through them, calls that served more than one
    /// sequence, and the most sequences one call served.</summary>
    public DecodeBatchStats Stats
    {
        get { lock (_gate) return new DecodeBatchStats(_calls, _rows, _sharedCalls, _widest); }
    }

    private int Computing => _seated - _away - _pending.Count - _inFlight;

    private bool Alone
    {
        get { lock (_gate) return _seated <= 1 && _pending.Count == 0; }
    }

    private Tensor[] Submit(Request request)
    {
        lock (_gate)
        {
            if (_pending.Count == 0) _firstPending = System.Diagnostics.Stopwatch.GetTimestamp();
            _pending.Add(request);
            while (!request.Done)
            {
                if (_running || Computing > 0) Monitor.Wait(_gate);
                else if (_away > 0 && HeldFor() is { } left) Monitor.Wait(_gate, left);
                else RunPending();
            }
        }
        if (request.Error is { } error) error.Throw();
        return request.Take();
    }

    /// <summary>How much longer the batch may hold for queries that are away; null once the wait is spent.</summary>
    private TimeSpan? HeldFor()
    {
        long left = _firstPending + _waitTicks - System.Diagnostics.Stopwatch.GetTimestamp();
        return left > 0 ? TimeSpan.FromSeconds((double)left / System.Diagnostics.Stopwatch.Frequency) : null;
    }

    /// <summary>Called holding the gate; releases it while the batch runs (others may arrive and wait) and returns
    /// holding it, with every taken request done.</summary>
    private void RunPending()
    {
        var taken = _pending.ToArray();
        _pending.Clear();
        _inFlight += taken.Length;
        _running = true;
        Monitor.Exit(_gate);
        try
        {
            foreach (var group in taken.GroupBy(r => (r.Layer, r.Part)))
                Run(group.ToArray());
        }
        finally
        {
            Monitor.Enter(_gate);
            // Their owners compute again from here on: a batch must wait for them.
            _inFlight -= taken.Length;
            _running = false;
            foreach (var r in taken) r.Done = true;
            Monitor.PulseAll(_gate);
        }
    }

    /// <summary>One call over the group's rows. Never throws: an error reaches every owner in the group.</summary>
    private void Run(Request[] group)
    {
        try
        {
            using var noGrad = no_grad();
            using var scope = NewDisposeScope(); // the concatenations; the outputs leave it below
            Tensor Rows(int input) => group.Length == 1 ? group[0].Inputs[input] : cat(group.Select(r => r.Inputs[input]).ToArray(), 1);
            var layer = group[0].Layer;
            Tensor[] outputs;
            if (group[0].Part == LayerPart.Project)
            {
                var p = layer.Project(Rows(0), new RopeAngles(Rows(1), Rows(2), Rows(3)));
                outputs = [p.QPre, p.KPre, p.VPre, p.Q, p.K, p.V];
            }
            else
            {
                outputs = [layer.Finish(Rows(0), Rows(1))];
            }
            foreach (var o in outputs) o.DetachFromDisposeScope();
            var shared = new SharedOutputs(outputs, group.Length);
            long offset = 0;
            foreach (var r in group)
            {
                r.Result = (shared, offset);
                offset += r.Length;
            }
            lock (_gate)
            {
                _calls++;
                _rows += offset;
                if (group.Length > 1) _sharedCalls++;
                _widest = Math.Max(_widest, group.Length);
            }
        }
        catch (Exception e)
        {
            var error = ExceptionDispatchInfo.Capture(e);
            foreach (var r in group) r.Error = error;
        }
    }

    private void Leave(ref int counter, int delta)
    {
        lock (_gate)
        {
            counter += delta;
            Monitor.PulseAll(_gate); // a batch may be ready now that this sequence stopped computing
        }
    }

    /// <summary>One sequence's place in the batcher: its <see cref="ILayerRunner"/>. Used from one thread at a time.</summary>
    public sealed class Seat(DecodeBatcher batcher) : ILayerRunner, IDisposable
    {
        private bool _left;

        public QkvProjection Project(DecoderLayer layer, Tensor hidden, RopeAngles angles)
        {
            if (batcher.Alone) return layer.Project(hidden, angles);
            var o = batcher.Submit(new Request(layer, LayerPart.Project, [hidden, angles.Cos, angles.Sin, angles.SignedSin], Rows(hidden)));
            return new QkvProjection(o[0], o[1], o[2], o[3], o[4], o[5]);
        }

        public Tensor Finish(DecoderLayer layer, Tensor hidden, Tensor attentionOut) =>
            batcher.Alone
                ? layer.Finish(hidden, attentionOut)
                : batcher.Submit(new Request(layer, LayerPart.Finish, [hidden, attentionOut], Rows(hidden)))[0];

        /// <summary>Marks the sequence as blocked on something outside this device (a collective with other hosts) until
        /// disposed: batches stop waiting for it meanwhile.</summary>
        public IDisposable Away()
        {
            batcher.Leave(ref batcher._away, +1);
            return new Back(batcher);
        }

        public void Dispose()
        {
            if (_left) return;
            _left = true;
            batcher.Leave(ref batcher._seated, -1);
        }

        private static long Rows(Tensor hidden) =>
            hidden.dim() == 3 && hidden.shape[0] == 1
                ? hidden.shape[1]
                : throw new ArgumentException($"a batched sequence passes its rows as [1, S, hidden] (got [{string.Join(", ", hidden.shape)}]).");
    }

    private sealed class Back(DecodeBatcher batcher) : IDisposable
    {
        private bool _done;

        public void Dispose()
        {
            if (_done) return;
            _done = true;
            batcher.Leave(ref batcher._away, -1);
        }
    }

    private enum LayerPart { Project, Finish }

    private sealed class Request(DecoderLayer layer, LayerPart part, Tensor[] inputs, long length)
    {
        public DecoderLayer Layer { get; } = layer;
        public LayerPart Part { get; } = part;
        public Tensor[] Inputs { get; } = inputs;
        public long Length { get; } = length;
        public bool Done { get; set; }
        public ExceptionDispatchInfo? Error { get; set; }
        public (SharedOutputs Outputs, long Offset) Result { get; set; }

        /// <summary>This request's rows of the batched outputs, as views made on the owner's thread (so they belong to
        /// its dispose scope).</summary>
        public Tensor[] Take()
        {
            var (shared, offset) = Result;
            var mine = shared.Tensors.Select(t => t.narrow(1, offset, Length)).ToArray();
            shared.Release();
            return mine;
        }
    }

    /// <summary>A call's outputs, owned by no scope: the last owner to take its rows frees the handles (its views keep
    /// the storage alive).</summary>
    private sealed class SharedOutputs(Tensor[] tensors, int owners)
    {
        private int _owners = owners;

        public Tensor[] Tensors { get; } = tensors;

        public void Release()
        {
            if (Interlocked.Decrement(ref _owners) != 0) return;
            foreach (var t in Tensors) t.Dispose();
        }
    }
}

/// <summary>What a <see cref="DecodeBatcher"/> did: layer-part calls, rows through them, calls shared by several
/// sequences and the most sequences in one call.</summary>
public readonly record struct DecodeBatchStats(long Calls, long Rows, long SharedCalls, int Widest);
