using System.Collections.Immutable;
using System.Threading.Channels;
using Akka.Actor;
using Akka.Cluster.Tools.Client;
using Akka.Cluster.Tools.PublishSubscribe;
using Akka.Configuration;
using Akka.Serialization;
using ApbCluster.Client;
using ApbCluster.Contracts;
using ApbCluster.Contracts.Serialization;

namespace ApbCluster.Runtime.Tests.Cluster;

/// <summary>Bytes and manifest sent as they are under the ApbSerializer's id: what a buggy or hostile client could put on the wire.</summary>
public sealed record RawWire(string Manifest, byte[] Bytes);

/// <summary>
/// The ApbSerializer (same identifier) that also writes <see cref="RawWire"/> verbatim, so a test can send
/// bytes the receiving node's ApbSerializer must reject, through the real remoting and ClusterClient path.
/// </summary>
public sealed class RawApbSerializer(ExtendedActorSystem system) : SerializerWithStringManifest(system)
{
    private readonly ApbSerializer _inner = new(system);

    public override int Identifier => ApbSerializer.Id;

    public override string Manifest(object o) => o is RawWire raw ? raw.Manifest : _inner.Manifest(o);

    public override byte[] ToBinary(object obj) => obj is RawWire raw ? raw.Bytes : _inner.ToBinary(obj);

    public override object FromBinary(byte[] bytes, string manifest) => _inner.FromBinary(bytes, manifest);
}

/// <summary>
/// A ClusterClient like <see cref="ClusterQueryClient"/>'s, but it sends any object (including RawWire) to
/// the router proxy and records every reply it gets, also after a terminal event (to see duplicates).
/// </summary>
public sealed class RawClusterClient : IAsyncDisposable
{
    private readonly ActorSystem _system;
    private readonly IActorRef _clusterClient;

    public RawClusterClient(string contact)
    {
        var config = ConfigurationFactory.ParseString("""
            akka.actor.provider = remote
            akka.remote.dot-netty.tcp.hostname = 127.0.0.1
            akka.remote.dot-netty.tcp.port = 0
            akka.remote.dot-netty.tcp.maximum-frame-size = 4 MiB
            akka.loglevel = WARNING
            akka.actor {
              serializers.apb = "ApbCluster.Runtime.Tests.Cluster.RawApbSerializer, ApbCluster.Runtime.Tests"
              serialization-bindings {
                "ApbCluster.Contracts.IApbMessage, ApbCluster.Contracts" = apb
                "ApbCluster.Runtime.Tests.Cluster.RawWire, ApbCluster.Runtime.Tests" = apb
              }
              serialization-identifiers {
                "ApbCluster.Runtime.Tests.Cluster.RawApbSerializer, ApbCluster.Runtime.Tests" = 16720
              }
            }
            """).WithFallback(ClusterClientReceptionist.DefaultConfig()).WithFallback(DistributedPubSub.DefaultConfig());
        _system = ActorSystem.Create("apb-raw-client", config);
        var paths = ImmutableHashSet.Create(ActorPath.Parse($"akka.tcp://apb@{contact}/system/receptionist"));
        _clusterClient = _system.ActorOf(ClusterClient.Props(ClusterClientSettings.Create(_system).WithInitialContacts(paths)), "cluster-client");
    }

    /// <summary>Real ApbSerializer bytes of a message (to corrupt).</summary>
    public byte[] Serialize(IApbMessage message) => new ApbSerializer((ExtendedActorSystem)_system).ToBinary(message);

    public string Manifest(IApbMessage message) => new ApbSerializer((ExtendedActorSystem)_system).Manifest(message);

    /// <summary>Sends <paramref name="message"/> and collects every reply until <paramref name="quiet"/> passes after a
    /// terminal event, or <paramref name="bound"/> in all.</summary>
    public async Task<List<IQueryMessage>> SendAndCollect(object message, TimeSpan bound, TimeSpan quiet)
    {
        var replies = Channel.CreateUnbounded<IQueryMessage>();
        var collector = _system.ActorOf(Props.Create(() => new Collector(replies.Writer)));
        _clusterClient.Tell(new ClusterClient.Send(ClusterQueryClient.RouterPath, message), collector);
        var got = new List<IQueryMessage>();
        var deadline = DateTime.UtcNow + bound;
        DateTime? quietUntil = null;
        try
        {
            while (true)
            {
                var until = quietUntil is { } q && q < deadline ? q : deadline;
                var left = until - DateTime.UtcNow;
                if (left <= TimeSpan.Zero) return got;
                using var wait = new CancellationTokenSource(left);
                try
                {
                    var e = await replies.Reader.ReadAsync(wait.Token);
                    got.Add(e);
                    if (e is QueryCompleted or QueryFailed or QueryCancelled or RouterBusy) quietUntil ??= DateTime.UtcNow + quiet;
                }
                catch (OperationCanceledException)
                {
                    return got;
                }
            }
        }
        finally
        {
            _system.Stop(collector);
        }
    }

    public async ValueTask DisposeAsync() => await _system.Terminate();

    private sealed class Collector : ReceiveActor
    {
        public Collector(ChannelWriter<IQueryMessage> replies) => Receive<IQueryMessage>(m => replies.TryWrite(m));
    }
}
