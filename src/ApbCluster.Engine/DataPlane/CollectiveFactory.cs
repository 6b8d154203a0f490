using ApbCluster.Contracts;
using ApbCluster.NativeInterop.Cuda;
using ApbCluster.NativeInterop.Nccl;
using ApbCluster.Parallel.Collectives;
using static TorchSharp.torch;

namespace ApbCluster.Engine.DataPlane;

/// <summary>
/// Builds one query's data plane for one rank. GPU ranks of a multi-host query use the NCCL ring the router
/// named (<see cref="ShardRing.NcclRingId"/>): its communicator is kept warm across queries by
/// <see cref="Rings"/> and every query starts with <see cref="RingHandshake"/>. A GPU query on one host needs
/// no NCCL (a one-rank in-process group). CPU hosts use the TCP mesh through this host's
/// <see cref="DataPlaneListener"/>, made and disposed per query.
/// </summary>
public sealed class CollectiveFactory : IDisposable
{
    private readonly DataPlaneListener _listener;
    private readonly string _device;
    private readonly bool _realNccl;

    /// <param name="ringJoin">How to join an NCCL ring; null: <see cref="NcclCollective.Join"/> on this host's GPU.
    /// Tests pass a fake (no GPU here).</param>
    public CollectiveFactory(DataPlaneListener listener, string device, RingJoin? ringJoin = null)
    {
        _listener = listener;
        _device = device;
        _realNccl = ringJoin is null;
        Rings = new RingCommunicators(ringJoin ?? JoinNccl);
    }

    public string Endpoint => _listener.Endpoint;

    /// <summary>This host's warm NCCL communicator (the router checks it before reusing a ring).</summary>
    public RingCommunicators Rings { get; }

    private bool IsCuda => _device.StartsWith("cuda", StringComparison.Ordinal);

    private int Gpu => _device.StartsWith("cuda:", StringComparison.Ordinal) ? int.Parse(_device[5..]) : 0;

    /// <summary>Blocking; call on the thread that runs the rank (NCCL binds the calling thread's CUDA device).</summary>
    public QueryCollective Acquire(string queryId, ShardRing ring, CancellationToken ct)
    {
        var deadline = TimeSpan.FromMilliseconds(ring.CollectiveTimeoutMs);
        // The run's thread is new for every query: make this host's GPU its current device (NCCL binds the joining
        // thread's device; an unqualified synchronize means the current one).
        if (IsCuda && _realNccl) CudaRuntime.SetDevice(Gpu);
        if (UsesNccl(ring))
        {
            var lease = Rings.Acquire(queryId, ring.NcclRingId.Length > 0 ? ring : ring with { NcclRingId = $"query:{queryId}" }, ct);
            var collective = QueryCollective.ForRing(lease, ct);
            try
            {
                RingHandshake.Verify(lease.Collective, queryId, lease.RingId, ring.HostIds);
            }
            catch
            {
                collective.End(clean: false);
                throw;
            }
            return collective;
        }
        if (IsCuda && ring.WorldSize == 1)
            return QueryCollective.Owned(InProcessCollectiveGroup.Create(1, deadline, [new Device(_device)])[0]);
        return QueryCollective.Owned(TcpCollective.ConnectAsync(_listener, queryId, ring.Rank, ring.DataEndpoints, deadline, ct).GetAwaiter().GetResult());
    }

    /// <summary>The rank runs over an NCCL ring (the router handed out a ring, or at least a unique id).</summary>
    public static bool UsesNccl(ShardRing ring) => ring.NcclRingId.Length > 0 || ring.NcclUniqueId is not null;

    /// <summary>Rank 0 of a new GPU ring makes the NCCL unique id the other ranks join with.</summary>
    public static byte[] NewNcclId() => NcclCommunicator.CreateUniqueId().ToBytes();

    public void Forget(string queryId) => _listener.Forget(queryId);

    /// <summary>Aborts the warm communicator (the host is stopping).</summary>
    public void Dispose() => Rings.Dispose();

    private IAbortableCollective JoinNccl(byte[] id, int rank, int worldSize, TimeSpan deadline, CancellationToken ct) =>
        NcclCollective.Join(NcclUniqueId.FromBytes(id), rank, worldSize, Gpu, deadline, ct);
}
