using Akka.Actor;

namespace ApbCluster.Runtime.Admin;

/// <summary>Asks the router singleton (through its proxy) with an error an operator can act on.</summary>
public static class RouterAsk
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(4); // under the clients' default 10s

    public static async Task<object> AskAsync(IActorRef routerProxy, object message, CancellationToken ct)
    {
        try
        {
            return await routerProxy.Ask<object>(message, Timeout, ct);
        }
        catch (AskTimeoutException)
        {
            throw new InvalidOperationException(
                $"the router did not answer {message.GetType().Name} within {Timeout.TotalSeconds:0}s " +
                "(no router node up yet, or a router version that does not handle this command)");
        }
    }
}
