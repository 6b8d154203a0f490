using System.Text;
using ApbCluster.Contracts;
using ApbCluster.NativeInterop;
using ApbCluster.Parallel.Collectives;
using static TorchSharp.torch;

namespace ApbCluster.Engine.DataPlane;

/// <summary>
/// The first collective of every query on an NCCL ring: each rank all-gathers a 64-bit key of (query id, ring
/// id) and checks that every rank sent the same one. A warm communicator is shared by the queries of a ring, so
/// this is what makes it impossible for a rank to pair its collectives with another query's (for instance two
/// queries in flight that reached the hosts in different orders): a mismatch fails the query, naming the rank,
/// and the ring is dropped. It costs one 8-byte all-gather.
/// </summary>
public static class RingHandshake
{
    public const string What = "query handshake";

    /// <summary>FNV-1a (64 bit) of "queryId\nringId": stable across processes and runs.</summary>
    public static long Key(string queryId, string ringId)
    {
        ulong hash = 14695981039346656037UL;
        foreach (var b in Encoding.UTF8.GetBytes(queryId + "\n" + ringId))
        {
            hash ^= b;
            hash *= 1099511628211UL;
        }
        return unchecked((long)hash);
    }

    /// <summary>Throws <see cref="CollectiveException"/> naming the first rank whose key differs.</summary>
    public static void Verify(ICollective c, string queryId, string ringId, IReadOnlyList<string> hostIds)
    {
        long key = Key(queryId, ringId);
        using var scope = NewDisposeScope();
        var mine = tensor(new[] { key }, ScalarType.Int64).to(c.Device);
        var all = stack(c.AllGather(mine, What)).cpu().data<long>().ToArray();
        for (int rank = 0; rank < all.Length; rank++)
        {
            if (all[rank] == key) continue;
            var host = rank < hostIds.Count ? hostIds[rank] : $"rank {rank}";
            throw new CollectiveException("Handshake", What, c.Rank,
                $"{host} is running another query or ring on this communicator (key {all[rank]:x16}, expected {key:x16} for query {queryId} on ring {ringId})", rank);
        }
    }
}
