using ApbCluster.Contracts;

namespace ApbCluster.Runtime.Actors;

/// <summary>
/// The router's warm NCCL rings: for an ordered set of GPU hosts (same host ids, same actor incarnations, same
/// devices) the ring id and NCCL unique id their communicators were made with, so the next query on exactly
/// those hosts reuses them instead of paying for a new communicator. A ring is given up (and its members told
/// to drop it) when a member re-registers as a new actor, leaves, dies or becomes unreachable, when a query on
/// it does not end cleanly, and when a new ring takes one of its hosts (a host holds one communicator).
/// This is a hint, not the safety net: before reusing a ring the query asks every member whether it still
/// holds it (<see cref="NcclRingCheck"/>), and every query starts with a handshake on the communicator.
/// Pure logic (no actors), used only from the router's thread.
/// </summary>
public sealed class NcclRingTable
{
    /// <summary>A ring member: host id, actor path with its incarnation uid, device.</summary>
    public readonly record struct Member(string HostId, string Actor, string Device);

    public sealed record Ring(string RingId, IReadOnlyList<RegisterHost> Hosts, byte[] NcclId)
    {
        public IReadOnlyList<Member> Members { get; } = MembersOf(Hosts);

        public bool Has(string hostId) => Hosts.Any(h => h.HostId == hostId);
    }

    private readonly List<Ring> _rings = [];

    public int Count => _rings.Count;

    public static IReadOnlyList<Member> MembersOf(IEnumerable<RegisterHost> hosts) =>
        hosts.Select(h => new Member(h.HostId, h.Host.Path.ToSerializationFormat(), h.Device)).ToList();

    /// <summary>The ring of exactly these hosts in this order, or null.</summary>
    public Ring? Find(IReadOnlyList<RegisterHost> hosts)
    {
        var members = MembersOf(hosts);
        return _rings.FirstOrDefault(r => r.Members.SequenceEqual(members));
    }

    /// <summary>A query formed a new ring; returns the rings it displaced (they shared a host, whose communicator
    /// the new ring replaces).</summary>
    public IReadOnlyList<Ring> Formed(Ring ring)
    {
        var displaced = _rings.Where(r => r.RingId == ring.RingId || r.Hosts.Any(h => ring.Has(h.HostId))).ToList();
        foreach (var r in displaced) _rings.Remove(r);
        _rings.Add(ring);
        return displaced.Where(r => r.RingId != ring.RingId).ToList();
    }

    /// <summary>Gives up a ring (a query on it failed, was cancelled or aborted); null when unknown.</summary>
    public Ring? Broken(string ringId)
    {
        var ring = _rings.FirstOrDefault(r => r.RingId == ringId);
        if (ring is not null) _rings.Remove(ring);
        return ring;
    }

    /// <summary>Gives up every ring with one of these hosts (re-registered, removed, unreachable).</summary>
    public IReadOnlyList<Ring> HostsChanged(IEnumerable<string> hostIds)
    {
        var ids = hostIds.ToHashSet(StringComparer.Ordinal);
        var gone = _rings.Where(r => r.Hosts.Any(h => ids.Contains(h.HostId))).ToList();
        foreach (var r in gone) _rings.Remove(r);
        return gone;
    }
}
