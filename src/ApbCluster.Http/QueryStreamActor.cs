using System.Threading.Channels;
using Akka.Actor;
using ApbCluster.Contracts;

namespace ApbCluster.Http;

/// <summary>
/// One per HTTP request: submits the query to the router with itself as the sender, so the
/// router's replies (accepted, progress, tokens, completed/failed/busy) arrive here, and puts
/// them into a channel the request handler reads. Stopping it (client gone) cancels the query.
/// </summary>
public sealed class QueryStreamActor : ReceiveActor
{
    private readonly IActorRef _router;
    private readonly SubmitQuery _query;
    private readonly ChannelWriter<IQueryMessage> _out;
    private bool _finished;

    public QueryStreamActor(IActorRef router, SubmitQuery query, ChannelWriter<IQueryMessage> output)
    {
        _router = router;
        _query = query;
        _out = output;
        Receive<IQueryMessage>(m =>
        {
            _out.TryWrite(m);
            if (m is QueryCompleted or QueryFailed or RouterBusy or QueryCancelled)
            {
                _finished = true;
                _out.TryComplete();
            }
        });
    }

    protected override void PreStart() => _router.Tell(_query, Self);

    /// <summary>The client went away (or the handler gave up): free the hosts' KV now, not at the deadline.</summary>
    protected override void PostStop()
    {
        if (!_finished) _router.Tell(new CancelQuery(_query.QueryId), ActorRefs.NoSender);
        _out.TryComplete();
    }

    public static Props Props(IActorRef router, SubmitQuery query, ChannelWriter<IQueryMessage> output) =>
        Akka.Actor.Props.Create(() => new QueryStreamActor(router, query, output));
}
