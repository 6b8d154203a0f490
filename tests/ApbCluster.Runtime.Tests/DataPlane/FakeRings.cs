using ApbCluster.Parallel.Collectives;
using ApbCluster.Engine.DataPlane;
using static TorchSharp.torch;

namespace ApbCluster.Runtime.Tests.DataPlane;

/// <summary>
/// NCCL rings without GPUs: joining with unique id X as rank r gives rank r of an in-process group shared by
/// every join with X (like NCCL, the ranks of one id form one communicator). Records every join.
/// </summary>
public sealed class FakeRings
{
    private readonly Dictionary<string, ICollective[]> _groups = new(StringComparer.Ordinal);
    private readonly List<FakeRingCollective> _joined = [];

    /// <summary>Set to make every join fail (e.g. a peer that never comes).</summary>
    public Exception? JoinFailure { get; set; }

    /// <summary>Blocks joins until set (to drop or cancel a join in progress).</summary>
    public ManualResetEventSlim JoinGate { get; } = new(initialState: true);

    public IReadOnlyList<FakeRingCollective> Joined
    {
        get { lock (_groups) return _joined.ToList(); }
    }

    public RingJoin Join => (id, rank, world, deadline, ct) =>
    {
        JoinGate.Wait(ct);
        if (JoinFailure is { } e) throw e;
        lock (_groups)
        {
            var key = Convert.ToHexString(id);
            if (!_groups.TryGetValue(key, out var group)) _groups[key] = group = InProcessCollectiveGroup.Create(world, deadline);
            var c = new FakeRingCollective(group[rank], key);
            _joined.Add(c);
            return c;
        }
    };

    public static byte[] Id(int n) => [.. Enumerable.Range(0, 128).Select(i => (byte)(i + n))];
}

/// <summary>One rank of a fake ring: collectives go to the in-process group; aborts abort the whole group
/// (as a real abort makes the peers fail) and are recorded.</summary>
public sealed class FakeRingCollective(ICollective inner, string key) : IAbortableCollective
{
    private volatile string? _abortRequested, _aborted;

    public string Key => key;
    public string? AbortRequested => _abortRequested;
    public string? Aborted => _aborted;
    public bool Disposed { get; private set; }

    public int Rank => inner.Rank;
    public int WorldSize => inner.WorldSize;
    public Device Device => inner.Device;
    public TimeSpan Deadline { get; set; } = inner.Deadline;
    public bool IsAborted => _abortRequested != null || _aborted != null;

    public void RequestAbort(string reason)
    {
        Interlocked.CompareExchange(ref _abortRequested, reason, null);
        InProcessCollectiveGroup.TryAbortGroup(inner, reason);
    }

    public void Abort(string reason)
    {
        Interlocked.CompareExchange(ref _aborted, reason, null);
        InProcessCollectiveGroup.TryAbortGroup(inner, reason);
    }

    public Tensor[] AllGather(Tensor local, string what) => inner.AllGather(local, what);
    public void Send(Tensor t, int peer, string what) => inner.Send(t, peer, what);
    public Tensor Receive(long[] shape, ScalarType dtype, int peer, string what) => inner.Receive(shape, dtype, peer, what);
    public Tensor SendReceive(Tensor send, int sendTo, int receiveFrom, string what) => inner.SendReceive(send, sendTo, receiveFrom, what);
    public Tensor Broadcast(Tensor? t, long[] shape, ScalarType dtype, int root, string what) => inner.Broadcast(t, shape, dtype, root, what);
    public Tensor[] AllToAll(Tensor[] chunks, string what) => inner.AllToAll(chunks, what);
    public void Barrier(string what) => inner.Barrier(what);
    public void Dispose() => Disposed = true;
}
