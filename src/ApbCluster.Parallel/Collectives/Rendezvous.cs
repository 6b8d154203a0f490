using System.Diagnostics;
using ApbCluster.NativeInterop;

namespace ApbCluster.Parallel.Collectives;

/// <summary>
/// Meeting points for the ranks of one in-process group. A slot (keyed by channel and sequence number)
/// has fixed participants; each arrives with an item, waits for the others' items, uses them, then departs.
/// Senders wait for everyone to depart before returning, so their tensors stay alive while receivers copy.
/// One lock for the whole group: at most a handful of ranks, and simple to reason about.
/// A timeout or failure aborts the group, waking every waiting rank with an error (NCCL abort semantics).
/// </summary>
internal sealed class Rendezvous
{
    private readonly object _gate = new();
    private readonly Dictionary<SlotKey, Slot> _slots = new();
    private string? _abortReason;

    public bool IsAborted { get { lock (_gate) return _abortReason != null; } }

    public void Abort(string reason)
    {
        lock (_gate)
        {
            _abortReason ??= reason;
            Monitor.PulseAll(_gate);
        }
    }

    /// <summary>Deposits <paramref name="item"/>; checks every participant is in the same operation.</summary>
    public void Arrive(SlotKey key, int[] participants, Call call, object? item)
    {
        lock (_gate)
        {
            ThrowIfAborted(call);
            if (!_slots.TryGetValue(key, out var slot))
                _slots[key] = slot = new Slot(participants, call);
            if (key.Collective && slot.FirstCall.Operation != call.Operation)
                throw Fail(call, $"rank {slot.FirstCall.Rank} called {slot.FirstCall.Operation} '{slot.FirstCall.What}' at the same point: ranks disagree on the order of collectives");
            var i = slot.IndexOf(call.Rank);
            slot.Items[i] = item;
            slot.Arrived[i] = true;
            Monitor.PulseAll(_gate);
        }
    }

    /// <summary>Waits for every participant's item (indexed like the participants), or throws naming those missing.</summary>
    public object?[] AwaitArrivals(SlotKey key, Call call)
    {
        lock (_gate)
        {
            while (true)
            {
                ThrowIfAborted(call);
                var slot = _slots[key];
                if (slot.Arrived.All(a => a)) return (object?[])slot.Items.Clone();
                var missing = slot.Participants.Where((_, i) => !slot.Arrived[i]).ToArray();
                WaitOrTimeout(call, () =>
                    $"deadline of {call.Deadline.TotalSeconds:0.###} s passed; rank(s) [{string.Join(", ", missing)}] never arrived", missing);
            }
        }
    }

    /// <summary>Marks this participant done with the items; the last one removes the slot.</summary>
    public void Depart(SlotKey key, int rank)
    {
        lock (_gate)
        {
            if (!_slots.TryGetValue(key, out var slot)) return;
            slot.Departed[slot.IndexOf(rank)] = true;
            if (slot.Departed.All(d => d)) _slots.Remove(key);
            Monitor.PulseAll(_gate);
        }
    }

    /// <summary>Waits until every participant has departed (so this rank's item is no longer read).</summary>
    public void AwaitDepartures(SlotKey key, Call call)
    {
        lock (_gate)
        {
            while (_slots.TryGetValue(key, out var slot))
            {
                ThrowIfAborted(call);
                var pending = slot.Participants.Where((_, i) => !slot.Departed[i]).ToArray();
                WaitOrTimeout(call, () =>
                    $"deadline of {call.Deadline.TotalSeconds:0.###} s passed; rank(s) [{string.Join(", ", pending)}] never took the data", pending);
            }
        }
    }

    /// <summary>Builds the exception for a failure of this call and aborts the group with it.</summary>
    public CollectiveException Fail(Call call, string detail, IReadOnlyList<int>? missing = null, bool timedOut = false, Exception? inner = null)
    {
        var e = new CollectiveException(call.Operation, call.What, call.Rank, detail, call.Peer, missing, timedOut, inner);
        Abort($"rank {call.Rank}: {e.Message}");
        return e;
    }

    // Called with _gate held.
    private void WaitOrTimeout(Call call, Func<string> detail, int[] missing)
    {
        var left = call.Deadline - call.Clock.Elapsed;
        if (left <= TimeSpan.Zero || !Monitor.Wait(_gate, left) && call.Clock.Elapsed >= call.Deadline)
            throw Fail(call, detail(), missing, timedOut: true);
    }

    private void ThrowIfAborted(Call call)
    {
        if (_abortReason != null)
            throw new CollectiveException(call.Operation, call.What, call.Rank, $"the group was aborted: {_abortReason}", call.Peer) { Aborted = true };
    }

    private sealed class Slot(int[] participants, Call firstCall)
    {
        public readonly int[] Participants = participants;
        public readonly Call FirstCall = firstCall;
        public readonly object?[] Items = new object?[participants.Length];
        public readonly bool[] Arrived = new bool[participants.Length];
        public readonly bool[] Departed = new bool[participants.Length];
        public int IndexOf(int rank) => Array.IndexOf(Participants, rank);
    }
}

/// <summary>A meeting point: collectives use (-1, -1, seq); point-to-point uses (sender, receiver, seq).</summary>
internal readonly record struct SlotKey(int From, int To, long Sequence)
{
    public bool Collective => From < 0;
    public static SlotKey ForCollective(long seq) => new(-1, -1, seq);
}

/// <summary>One rank's call, for waits and errors; the deadline runs from its start.</summary>
internal sealed record Call(string Operation, string What, int Rank, int? Peer, TimeSpan Deadline)
{
    public Stopwatch Clock { get; } = Stopwatch.StartNew();
}
