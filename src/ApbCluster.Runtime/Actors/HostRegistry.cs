using Akka.Actor;
using ApbCluster.Contracts;

namespace ApbCluster.Runtime.Actors;

/// <summary>The router's view of the hosts, in ring order (node address, then host id).</summary>
public sealed class HostRegistry
{
    /// <param name="Gone">Its node's connection closed, or a query found it gone: not planned until it registers again
    /// (a live host does so within one register-interval; a dead one never does and is removed when downed).</param>
    private sealed record Entry(RegisterHost Registration, Address Address, bool Reachable, bool Gone = false);

    private readonly SortedDictionary<string, Entry> _byHostId = new(StringComparer.Ordinal);

    public int Count => _byHostId.Count;

    public bool Contains(string hostId) => _byHostId.ContainsKey(hostId);

    /// <summary>Adds or refreshes a host; true when it is new (or its actor changed).</summary>
    public bool Upsert(RegisterHost registration, Address address)
    {
        var isNew = !_byHostId.TryGetValue(registration.HostId, out var old) || !old.Registration.Host.Equals(registration.Host);
        _byHostId[registration.HostId] = new Entry(registration, address, old?.Reachable ?? true);
        return isNew;
    }

    public IReadOnlyList<string> RemoveByActor(IActorRef actor) => RemoveWhere(e => e.Registration.Host.Equals(actor));

    public IReadOnlyList<string> RemoveByAddress(Address address) => RemoveWhere(e => e.Address.Equals(address));

    /// <summary>The hosts registered from the node at <paramref name="address"/>.</summary>
    public IReadOnlyList<string> HostsAt(Address address) =>
        _byHostId.Where(kv => kv.Value.Address.Equals(address)).Select(kv => kv.Key).ToList();

    /// <summary>The node at <paramref name="address"/> closed its connection: its hosts are probably dead.</summary>
    public IReadOnlyList<string> MarkGone(Address address) => MarkGoneWhere(e => e.Address.Equals(address));

    /// <summary>A query found <paramref name="hostId"/> gone before it started.</summary>
    public void MarkGone(string hostId) => MarkGoneWhere(e => e.Registration.HostId == hostId);

    private List<string> MarkGoneWhere(Func<Entry, bool> predicate)
    {
        var ids = _byHostId.Where(kv => !kv.Value.Gone && predicate(kv.Value)).Select(kv => kv.Key).ToList();
        foreach (var id in ids) _byHostId[id] = _byHostId[id] with { Gone = true };
        return ids;
    }

    public void MarkReachable(Address address, bool reachable)
    {
        foreach (var (id, entry) in _byHostId.Where(kv => kv.Value.Address.Equals(address)).ToList())
            _byHostId[id] = entry with { Reachable = reachable };
    }

    /// <summary>Ring order: by node address then host id, so a plan is stable across re-registration.</summary>
    public IReadOnlyList<HostStatus> Snapshot() =>
        _byHostId.Values
            .OrderBy(e => e.Address.ToString(), StringComparer.Ordinal)
            .ThenBy(e => e.Registration.HostId, StringComparer.Ordinal)
            .Select(e => new HostStatus(e.Registration.HostId, e.Address.ToString(), e.Registration.Device,
                e.Registration.MemoryUsedBytes, e.Registration.MemoryTotalBytes, e.Registration.Model,
                e.Reachable && !e.Gone ? e.Registration.State : HostState.Unreachable, e.Registration.KvBytes,
                e.Registration.HostMemoryUsedBytes, e.Registration.HostMemoryTotalBytes, e.Registration.HostKvBytes))
            .ToList();

    /// <summary>Hosts a query may be planned on, in ring order: reachable, and Ready or Busy (Busy ones are
    /// finishing the previous query and take the next one from their stash).</summary>
    public IReadOnlyList<RegisterHost> RingOrder() =>
        _byHostId.Values
            .Where(e => e.Reachable && !e.Gone && e.Registration.State is HostState.Ready or HostState.Busy)
            .OrderBy(e => e.Address.ToString(), StringComparer.Ordinal)
            .ThenBy(e => e.Registration.HostId, StringComparer.Ordinal)
            .Select(e => e.Registration)
            .ToList();

    private List<string> RemoveWhere(Func<Entry, bool> predicate)
    {
        var ids = _byHostId.Where(kv => predicate(kv.Value)).Select(kv => kv.Key).ToList();
        foreach (var id in ids) _byHostId.Remove(id);
        return ids;
    }
}
