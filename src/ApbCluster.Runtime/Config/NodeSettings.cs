using ApbCluster.Parallel.Serving;

namespace ApbCluster.Runtime.Config;

/// <summary>The effective node settings after baseline, file and environment overlay.</summary>
public sealed record NodeSettings(
    string SystemName,
    string Hostname,
    string PublicHostname,
    int Port,
    IReadOnlyList<string> Seeds,
    IReadOnlyList<string> Roles,
    string AdminHost,
    int AdminPort,
    string AdminToken,
    int VirtualHosts,
    string Device,
    string ModelDir,
    TimeSpan RegisterInterval,
    string Model,
    int DataPort,
    TimeSpan TestLayerDelay,
    int MaxQueries = 4,
    long KvMemory = 0,
    bool BatchDecode = false,
    PrefillPolicy PrefillPolicy = PrefillPolicy.Concurrent,
    long HostKvMemory = 0)
{
    public bool HasRole(string role) => Roles.Contains(role);

    public string SelfAddress => $"akka.tcp://{SystemName}@{PublicHostname}:{Port}";
}
