using System.Threading.Channels;
using Akka.Actor;
using ApbCluster.Contracts;

namespace ApbCluster.Http;

/// <summary>
/// One per HTTP request: submits the query to the router with itself as the sender, so the
/// router's replies (accepted, progress, tokens, completed/failed/busy) arrive here, and puts
/// them into a channel the request handler reads. It follows the router's node through the
/// <see cref="RouterWatch"/>: when that node is lost the request ends with <see cref="RouterUnavailable"/>
/// instead of waiting for its timeout. Stopping it (client gone) cancels the query.
/// </summary>
public sealed class QueryStreamActor : ReceiveActor
{
    private readonly IActorRef _router;
    private readonly SubmitQuery _query;
    private readonly ChannelWriter<IQueryMessage> _out;
    private readonly IActorRef? _watch;
    private Address? _routerNode;
    private bool _finished, _lost;

    /// <param name="watch">The front door's <see cref="RouterWatch"/>; null: no router failover handling.</param>
    /// <param name="routerNode">Where the singleton was when the request was admitted.</param>
    public QueryStreamActor(IActorRef router, SubmitQuery query, ChannelWriter<IQueryMessage> output, IActorRef? watch = null, Address? routerNode = null)
    {
        _router = router;
        _query = query;
        _out = output;
        _watch = watch;
        _routerNode = routerNode;
        Receive<IQueryMessage>(m =>
        {
            FollowSender();
            if (_finished) return;
            _out.TryWrite(m);
            if (m is QueryCompleted or QueryFailed or RouterBusy or QueryCancelled) Finish();
        });
        Receive<RouterWatch.Lost>(lost =>
        {
            if (_finished || !lost.Router.Equals(_routerNode)) return;
            _lost = true;
            _out.TryWrite(new RouterUnavailable(_query.QueryId, $"the router node {lost.Router} was lost ({lost.Reason}); the query did not finish, retry it"));
            Finish();
        });
    }

    protected override void PreStart()
    {
        if (_watch is not null && _routerNode is not null) _watch.Tell(new RouterWatch.Follow(_routerNode));
        _router.Tell(_query, Self);
    }

    /// <summary>The replies come from the run on the singleton that took the query: follow that node (it may
    /// differ from the one seen at admission when the singleton moved meanwhile).</summary>
    private void FollowSender()
    {
        if (_watch is null || Sender.IsNobody()) return;
        var node = Sender.Path.Address;
        if (node.Equals(_routerNode)) return;
        _routerNode = node;
        _watch.Tell(new RouterWatch.Follow(node));
    }

    private void Finish()
    {
        _finished = true;
        _out.TryComplete();
    }

    /// <summary>The client went away (or the handler gave up): free the hosts' KV now, not at the deadline.
    /// After a router loss the cancel still goes out: the node may only have been cut off.</summary>
    protected override void PostStop()
    {
        if (!_finished || _lost) _router.Tell(new CancelQuery(_query.QueryId), ActorRefs.NoSender);
        _out.TryComplete();
    }

    public static Props Props(IActorRef router, SubmitQuery query, ChannelWriter<IQueryMessage> output, IActorRef? watch = null, Address? routerNode = null) =>
        Akka.Actor.Props.Create(() => new QueryStreamActor(router, query, output, watch, routerNode));
}

/// <summary>The front door lost the router's node while this request waited or ran (never sent between actors).</summary>
public sealed record RouterUnavailable(string QueryId, string Reason) : IQueryMessage;
