using System.Runtime.CompilerServices;
using System.Threading.Channels;
using System.Collections.Immutable;
using Akka.Actor;
using Akka.Cluster.Tools.Client;
using Akka.Cluster.Tools.PublishSubscribe;
using Akka.Configuration;
using ApbCluster.Contracts;
using ApbCluster.Contracts.Serialization;

namespace ApbCluster.Client;

/// <summary>
/// Submits queries to a running ApbCluster from outside it: a small ActorSystem (remote provider,
/// never a cluster member) with a ClusterClient to the receptionists of the router nodes.
/// <code>
/// await using var client = ClusterQueryClient.Connect(["10.0.0.1:4053"]);
/// await foreach (var e in client.AskAsync(query, ct))
///     if (e is TokenChunk t) Console.Write(t.Text);
/// </code>
/// <see cref="AskAsync"/> yields QueryAccepted, PrefillProgress and TokenChunk events, then exactly one
/// terminal event: QueryCompleted, QueryFailed, QueryCancelled or RouterBusy. Cancelling the token
/// sends CancelQuery (every host frees its KV) and ends with QueryCancelled.
/// </summary>
public sealed class ClusterQueryClient : IAsyncDisposable
{
    /// <summary>The router's singleton proxy, registered with the receptionist on router nodes.</summary>
    public const string RouterPath = "/user/query-router-proxy";

    private readonly ActorSystem _system;
    private readonly IActorRef _clusterClient;
    private readonly ClusterQueryClientOptions _options;

    private ClusterQueryClient(ActorSystem system, IActorRef clusterClient, ClusterQueryClientOptions options)
    {
        _system = system;
        _clusterClient = clusterClient;
        _options = options;
    }

    /// <param name="contacts">Router nodes as "host:port" (their CLUSTER_IP:CLUSTER_PORT), or full receptionist paths.</param>
    public static ClusterQueryClient Connect(IEnumerable<string> contacts, ClusterQueryClientOptions? options = null)
    {
        options ??= new ClusterQueryClientOptions();
        var config = ConfigurationFactory.ParseString($$"""
            akka.actor.provider = remote
            akka.remote.dot-netty.tcp.hostname = "{{options.Hostname}}"
            akka.remote.dot-netty.tcp.port = {{options.Port}}
            akka.remote.dot-netty.tcp.maximum-frame-size = 4 MiB
            akka.loglevel = WARNING
            akka.cluster.client.reconnect-timeout = off
            """).WithFallback(ConfigurationFactory.ParseString(SerializerHocon.Text))
            .WithFallback(ClusterClientReceptionist.DefaultConfig())
            // ClusterClient wraps each message in a pub-sub Send: without this binding that envelope (and the
            // SubmitQuery inside it) went as Newtonsoft JSON with CLR type names, which the router cannot
            // resolve for client-only types (e.g. a collection-expression list of token ids): silently dropped.
            .WithFallback(DistributedPubSub.DefaultConfig());
        var system = Logging.QuietActorSystem.Create("apb-client", config);
        var paths = contacts.Select(c => ActorPath.Parse(c.Contains("://") ? c : $"akka.tcp://{options.SystemName}@{c}/system/receptionist")).ToImmutableHashSet();
        var client = system.ActorOf(ClusterClient.Props(ClusterClientSettings.Create(system).WithInitialContacts(paths)), "cluster-client");
        return new ClusterQueryClient(system, client, options);
    }

    /// <summary>Streams one query's events; see the class summary.</summary>
    public async IAsyncEnumerable<object> AskAsync(SubmitQuery query, [EnumeratorCancellation] CancellationToken ct = default)
    {
        var events = Channel.CreateUnbounded<object>();
        var listener = _system.ActorOf(Props.Create(() => new QueryListener(query.QueryId, events.Writer, _options.IdleTimeout)));
        _clusterClient.Tell(new ClusterClient.Send(RouterPath, query), listener);
        await using var onCancel = ct.Register(() =>
        {
            _clusterClient.Tell(new ClusterClient.Send(RouterPath, new CancelQuery(query.QueryId)), listener);
            listener.Tell(new QueryListener.CancelRequested(_options.CancelTimeout));
        });
        try
        {
            await foreach (var e in events.Reader.ReadAllAsync(CancellationToken.None))
                yield return e;
        }
        finally
        {
            _system.Stop(listener);
        }
    }

    /// <summary>Collects a whole answer: the terminal event plus the streamed chunks.</summary>
    public async Task<(object Terminal, IReadOnlyList<TokenChunk> Chunks)> AskToEndAsync(SubmitQuery query, CancellationToken ct = default)
    {
        var chunks = new List<TokenChunk>();
        object? last = null;
        await foreach (var e in AskAsync(query, ct))
        {
            if (e is TokenChunk t) chunks.Add(t);
            last = e;
        }
        return (last!, chunks);
    }

    /// <summary>The router's hosts, queue depth and queries in flight.</summary>
    public Task<ClusterStatus> StatusAsync(TimeSpan timeout) =>
        _clusterClient.Ask<ClusterStatus>(new ClusterClient.Send(RouterPath, GetClusterStatus.Instance), timeout);

    public async ValueTask DisposeAsync() => await _system.Terminate();
}
