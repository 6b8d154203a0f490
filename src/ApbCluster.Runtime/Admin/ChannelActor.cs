using System.Threading.Channels;
using Akka.Actor;

namespace ApbCluster.Runtime.Admin;

/// <summary>
/// A short-lived actor that puts every message it receives into a channel, so an admin
/// stream (async code) can await actor messages: cluster events, trace copies, replies.
/// <paramref name="onStart"/> runs in PreStart with Self (subscribe, send the request).
/// </summary>
public sealed class ChannelActor : ReceiveActor
{
    private readonly Action<IActorContext>? _onStart;
    private readonly Action<IActorContext>? _onStop;

    public ChannelActor(ChannelWriter<object> writer, Action<IActorContext>? onStart, Action<IActorContext>? onStop)
    {
        _onStart = onStart;
        _onStop = onStop;
        ReceiveAny(m => writer.TryWrite(m));
    }

    protected override void PreStart() => _onStart?.Invoke(Context);

    protected override void PostStop() => _onStop?.Invoke(Context);
}

/// <summary>Starts <see cref="ChannelActor"/>s for admin streams.</summary>
public static class ChannelActors
{
    /// <summary>Starts the actor; dispose the handle to stop it.</summary>
    public static ChannelActorHandle Start(ActorSystem system, Action<IActorContext>? onStart = null, Action<IActorContext>? onStop = null)
    {
        var channel = Channel.CreateUnbounded<object>(new UnboundedChannelOptions { SingleReader = true });
        var actor = system.ActorOf(Props.Create(() => new ChannelActor(channel.Writer, onStart, onStop)), $"admin-stream-{Guid.NewGuid():N}");
        return new ChannelActorHandle(actor, channel.Reader);
    }
}

/// <summary>The running actor and what it received; dispose to stop it.</summary>
public sealed class ChannelActorHandle(IActorRef actor, ChannelReader<object> messages) : IDisposable
{
    public IActorRef Actor => actor;

    public ChannelReader<object> Messages => messages;

    public void Dispose() => actor.Tell(PoisonPill.Instance);
}
