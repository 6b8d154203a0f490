using Akka.Configuration;
using ApbCluster.Contracts.Serialization;

namespace ApbCluster.Runtime.Tests.Actors;

/// <summary>A cluster-provider ActorSystem on a free port, not joined, messages serialized.</summary>
public static class ClusterTestConfig
{
    public static Akka.Configuration.Config Hocon => ConfigurationFactory.ParseString("""
        akka.actor.provider = cluster
        akka.actor.serialize-messages = on
        akka.remote.dot-netty.tcp.hostname = 127.0.0.1
        akka.remote.dot-netty.tcp.port = 0
        akka.loglevel = WARNING
        """).WithFallback(ConfigurationFactory.ParseString(SerializerHocon.Text));
}
