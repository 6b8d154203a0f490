using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using Akka.Configuration;
using HoconConfig = Akka.Configuration.Config;

namespace ApbCluster.Runtime.Config;

/// <summary>
/// A node bound to every interface (CLUSTER_IP=0.0.0.0 or ::, as in containers) must still give peers
/// one address they can dial: left alone, Akka advertises the wildcard itself (akka.tcp://apb@0.0.0.0:4053)
/// and nobody can reach the node back. Without CLUSTER_PUBLIC_HOSTNAME the node advertises its own
/// address instead: what its host name resolves to (a container's /etc/hosts maps it to the container's
/// IP), else the first non-loopback interface address.
/// </summary>
public static class AdvertisedAddress
{
    private const string HostnameKey = "akka.remote.dot-netty.tcp.hostname";
    private const string PublicHostnameKey = "akka.remote.dot-netty.tcp.public-hostname";

    /// <param name="discover">This machine's reachable address (injected by tests); null when there is none.</param>
    public static HoconConfig Apply(HoconConfig config, Func<string?>? discover = null)
    {
        var bind = config.GetString(HostnameKey, "");
        if (!IsWildcard(bind) || config.GetString(PublicHostnameKey, "").Length > 0) return config;
        var own = (discover ?? Discover)();
        if (own is null || IsWildcard(own))
            throw new NodeConfigException(
                $"CLUSTER_IP='{bind}' binds every interface, but this machine has no non-loopback address to advertise: " +
                "set CLUSTER_PUBLIC_HOSTNAME to the name or address peers reach this node at");
        return ConfigurationFactory.ParseString($"{PublicHostnameKey} = \"{own}\"").WithFallback(config);
    }

    public static bool IsWildcard(string host) => host is "" or "0.0.0.0" or "::" or "[::]" or "*";

    private static string? Discover()
    {
        try
        {
            var byName = Dns.GetHostAddresses(Dns.GetHostName()).FirstOrDefault(Usable);
            if (byName is not null) return byName.ToString();
        }
        catch (SocketException)
        {
            // An unresolvable host name is common outside containers: fall back to the interfaces.
        }
        return NetworkInterface.GetAllNetworkInterfaces()
            .Where(n => n.OperationalStatus == OperationalStatus.Up && n.NetworkInterfaceType != NetworkInterfaceType.Loopback)
            .SelectMany(n => n.GetIPProperties().UnicastAddresses.Select(u => u.Address))
            .FirstOrDefault(Usable)?.ToString();
    }

    // IPv4 only: Akka's address syntax for IPv6 needs brackets the seeds and docs do not use.
    private static bool Usable(IPAddress a) => a.AddressFamily == AddressFamily.InterNetwork && !IPAddress.IsLoopback(a);
}
