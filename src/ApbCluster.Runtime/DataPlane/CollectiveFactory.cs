using ApbCluster.Contracts;
using ApbCluster.NativeInterop.Nccl;
using ApbCluster.Parallel.Collectives;

namespace ApbCluster.Runtime.DataPlane;

/// <summary>
/// Builds one query's <see cref="ICollective"/> for one rank: NCCL when the router handed out a unique
/// id (GPU hosts), otherwise the TCP mesh through this host's <see cref="DataPlaneListener"/>.
/// </summary>
public sealed class CollectiveFactory(DataPlaneListener listener, string device)
{
    public string Endpoint => listener.Endpoint;

    public async Task<ICollective> CreateAsync(RunShard work, CancellationToken ct)
    {
        var deadline = TimeSpan.FromMilliseconds(work.CollectiveTimeoutMs);
        if (work.NcclUniqueId is { } id)
        {
            int gpu = device.StartsWith("cuda:", StringComparison.Ordinal) ? int.Parse(device[5..]) : 0;
            // Blocks until every rank joined (or the watchdog deadline): keep it off the caller's thread.
            return await Task.Run(() => NcclCollective.Join(NcclUniqueId.FromBytes(id), work.Rank, work.WorldSize, gpu, deadline), ct);
        }
        return await TcpCollective.ConnectAsync(listener, work.QueryId, work.Rank, work.DataEndpoints, deadline, ct);
    }

    /// <summary>Rank 0 of a GPU query makes the NCCL unique id the other ranks join with.</summary>
    public static byte[] NewNcclId() => NcclCommunicator.CreateUniqueId().ToBytes();

    public void Forget(string queryId) => listener.Forget(queryId);
}
