using ApbCluster.Contracts;
using ApbCluster.Parallel.Plan;
using ApbCluster.Engine;

namespace ApbCluster.Runtime.Actors;

/// <summary>
/// The router's book of KV memory: a query starts only when every host it is planned on can hold its shard
/// (<see cref="KvEstimate"/>), or its ShadowKV store, in device memory, and the store's values in host memory when
/// they live there. A host can hold, at most, its reported total less what it uses apart from KV (with
/// apb.gpu-host.kv-memory: that budget); free is that less the larger of the KV it last reported and the KV of the
/// queries this router admitted there and has not seen end (a registration lags behind an admission, and after a
/// hand-over only the report knows). Host memory is booked the same way against the host's reported host memory
/// (apb.gpu-host.host-kv-memory, or the machine's). Multi-host GPU queries share a host's one warm NCCL communicator,
/// so they also wait for any other such query on the same hosts. Not thread-safe: the router actor's.
/// </summary>
internal sealed class KvAdmission
{
    /// <param name="Bytes">KV in device memory per planned host, in ring order.</param>
    /// <param name="Nccl">The ranks talk over an NCCL ring.</param>
    /// <param name="HostBytes">ShadowKV values in host memory per planned host (null: none).</param>
    public sealed record Need(IReadOnlyList<string> HostIds, long[] Bytes, bool Nccl, long[]? HostBytes = null)
    {
        public long HostBytesOf(int i) => HostBytes?[i] ?? 0;
    }

    private readonly Dictionary<string, Need> _admitted = new();

    /// <summary>The query's KV per planned host; null when the router cannot plan it (no model config, or a plan or
    /// KV store error the run itself reports).</summary>
    public static Need? Estimate(SubmitQuery query, QueryValidation.Prompt prompt, IReadOnlyList<RegisterHost> planned, RouterSettings settings)
    {
        if (settings.Model is not { } model || planned.Count == 0) return null;
        var (kvStore, kvError) = QueryValidation.KvStore(query, settings);
        if (kvError is not null) return null;
        try
        {
            var plan = QueryPlanning.Plan(query.Mode, planned.Count, prompt.Document.Length, prompt.Question.Length, prompt.TemplateOffset,
                query.Apb?.AnchorLength, query.Apb?.PassingLength, QueryPlanning.ToSplit(query.Split, settings.DefaultSplit), model);
            var (hostIds, devices, nccl) = (planned.Select(h => h.HostId).ToList(), planned.Select(h => h.Device).ToList(), QueryRun.NeedsNcclRing(planned));
            if (ShadowKvWire.FromWire(kvStore) is { } shadowKv)
            {
                var (device, host) = KvEstimate.PerRank(plan, query.Generation.MaxNewTokens, model, devices, shadowKv);
                return new Need(hostIds, device, nccl, host);
            }
            return new Need(hostIds, KvEstimate.PerRank(plan, query.Generation.MaxNewTokens, model, devices), nccl);
        }
        catch (Exception e) when (e is PlanException or ArgumentException)
        {
            return null;
        }
    }

    /// <summary>The most KV <paramref name="host"/> could hold with no query running.</summary>
    public static long Capacity(RegisterHost host) =>
        Math.Max(0, host.MemoryTotalBytes - Math.Max(0, host.MemoryUsedBytes - host.KvBytes));

    /// <summary>The most ShadowKV values <paramref name="host"/> could keep in host memory with no query running.</summary>
    public static long HostCapacity(RegisterHost host) =>
        Math.Max(0, host.HostMemoryTotalBytes - Math.Max(0, host.HostMemoryUsedBytes - host.HostKvBytes));

    /// <summary>Why the query could not run even on an idle cluster; null when it could.</summary>
    public static string? NeverFits(Need need, IReadOnlyList<RegisterHost> hosts)
    {
        for (int i = 0; i < need.HostIds.Count; i++)
        {
            var host = hosts.FirstOrDefault(h => h.HostId == need.HostIds[i]);
            if (host is null) continue;
            if (need.Bytes[i] > Capacity(host))
                return $"the query needs {KvEstimate.Format(need.Bytes[i])} of KV on host {host.HostId}, which can hold at most " +
                       $"{KvEstimate.Format(Capacity(host))} (a shorter context, fewer new tokens or more hosts would fit)";
            if (need.HostBytesOf(i) > HostCapacity(host))
                return $"the query needs {KvEstimate.Format(need.HostBytesOf(i))} of host memory for its ShadowKV values on host " +
                       $"{host.HostId}, which can hold at most {KvEstimate.Format(HostCapacity(host))} of them (values on the device, " +
                       "a shorter context or more hosts would fit)";
        }
        return null;
    }

    /// <summary>Null when it fits now; otherwise what it waits for. Hosts running none of this router's queries take
    /// it whatever they last reported (it fits their capacity): a report that still counts a query just ended must
    /// not hold the queue, and nothing else would free memory there.</summary>
    public string? WaitsFor(Need need, IReadOnlyList<RegisterHost> hosts)
    {
        if (!_admitted.Values.Any(a => a.HostIds.Intersect(need.HostIds).Any())) return null;
        if (need.Nccl && _admitted.Values.FirstOrDefault(a => a.Nccl && a.HostIds.Intersect(need.HostIds).Any()) is { } other)
            return $"the NCCL query running on host(s) {string.Join(", ", other.HostIds.Intersect(need.HostIds))}";
        for (int i = 0; i < need.HostIds.Count; i++)
        {
            var host = hosts.FirstOrDefault(h => h.HostId == need.HostIds[i]);
            if (host is null) continue;
            var (free, hostFree) = Free(host);
            if (need.Bytes[i] > free)
                return $"{KvEstimate.Format(need.Bytes[i])} of KV on host {host.HostId} ({KvEstimate.Format(Math.Max(0, free))} free now)";
            if (need.HostBytesOf(i) > hostFree)
                return $"{KvEstimate.Format(need.HostBytesOf(i))} of host memory for ShadowKV values on host {host.HostId} " +
                       $"({KvEstimate.Format(Math.Max(0, hostFree))} free now)";
        }
        return null;
    }

    public void Admit(string queryId, Need need) => _admitted[queryId] = need;

    public void Release(string queryId) => _admitted.Remove(queryId);

    /// <summary>(device, host memory) free for KV on <paramref name="host"/>.</summary>
    private (long Device, long Host) Free(RegisterHost host)
    {
        long reserved = 0, reservedHost = 0;
        foreach (var a in _admitted.Values)
            for (int i = 0; i < a.HostIds.Count; i++)
                if (a.HostIds[i] == host.HostId)
                {
                    reserved += a.Bytes[i];
                    reservedHost += a.HostBytesOf(i);
                }
        return (Capacity(host) - Math.Max(host.KvBytes, reserved), HostCapacity(host) - Math.Max(host.HostKvBytes, reservedHost));
    }
}
