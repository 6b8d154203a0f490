using System.Threading.Channels;
using Akka.Actor;
using ApbCluster.Contracts;

namespace ApbCluster.Client;

/// <summary>
/// Receives one query's replies and writes them to the caller's channel; completes it at the
/// terminal event. Fails the query itself when the cluster goes silent for the idle timeout or the
/// replying node dies (death watch on the sender of the first reply), so a caller never hangs.
/// </summary>
internal sealed class QueryListener : ReceiveActor, IWithTimers
{
    public sealed record CancelRequested(TimeSpan Timeout) : INoSerializationVerificationNeeded;

    private sealed class Idle
    {
        public static readonly Idle Instance = new();
    }

    private readonly string _queryId;
    private readonly ChannelWriter<object> _events;
    private readonly TimeSpan _idleTimeout;
    private bool _watching, _cancelling;

    public QueryListener(string queryId, ChannelWriter<object> events, TimeSpan idleTimeout)
    {
        _queryId = queryId;
        _events = events;
        _idleTimeout = idleTimeout;
        Receive<IQueryMessage>(OnEvent);
        Receive<CancelRequested>(c =>
        {
            _cancelling = true;
            Timers.StartSingleTimer("idle", Idle.Instance, c.Timeout);
        });
        Receive<Idle>(_ => End(_cancelling
            ? new QueryCancelled(_queryId)
            : new QueryFailed(_queryId, $"no reply from the cluster for {_idleTimeout.TotalSeconds:0.#}s (router lost?)", null)));
        Receive<Terminated>(t => End(_cancelling
            ? new QueryCancelled(_queryId)
            : new QueryFailed(_queryId, $"the router node ({t.ActorRef.Path.Address}) was lost with the query in flight", null)));
    }

    public ITimerScheduler Timers { get; set; } = null!;

    protected override void PreStart() => Timers.StartSingleTimer("idle", Idle.Instance, _idleTimeout);

    private void OnEvent(IQueryMessage e)
    {
        // A reply this client could not decode is still a reply to this listener's query (each query has its own).
        if (e is MalformedMessage bad)
        {
            End(new QueryFailed(_queryId, $"a reply from the cluster could not be decoded ({bad.Reason}); do this client's and the cluster's ApbCluster.Contracts versions match?", null));
            return;
        }
        if (e.QueryId != _queryId) return;
        if (!_watching && !Sender.IsNobody() && Sender.Path.Address.HasGlobalScope)
        {
            Context.Watch(Sender); // the router side of the conversation; its node's death ends the query
            _watching = true;
        }
        if (e is QueryCompleted or QueryFailed or QueryCancelled or RouterBusy)
        {
            End(e);
            return;
        }
        if (!_cancelling) Timers.StartSingleTimer("idle", Idle.Instance, _idleTimeout);
        _events.TryWrite(e);
    }

    private void End(object terminal)
    {
        _events.TryWrite(terminal);
        _events.TryComplete();
        Context.Stop(Self);
    }
}
