using System.Runtime.InteropServices;
using Akka.Actor;
using ApbCluster.Http;
using ApbCluster.Runtime.Config;
using ApbCluster.Runtime.Hosting;

namespace ApbCluster.Node;

/// <summary>
/// apb-node [--config FILE]: one cluster node (roles from CLUSTER_ROLES: router, gpu-host).
/// Exit codes (<see cref="NodeExitCodes"/>): 0 after a requested stop, 3 when the cluster removed this
/// node (downed, or no seed answered), 4 when the router refused its host (join secret, model), 2 for bad
/// configuration (also: no join secret), 1 for other startup errors.
/// </summary>
public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        string? configFile = null;
        for (var i = 0; i < args.Length; i++)
        {
            if (args[i] is "--config" && i + 1 < args.Length) configFile = args[++i];
            else if (args[i] is "-h" or "--help")
            {
                Console.WriteLine("apb-node [--config FILE]\nenvironment: " + string.Join(", ", EnvironmentOverlay.Variables) + "\nsee docs/configuration.md");
                return 0;
            }
            else
            {
                await Console.Error.WriteLineAsync($"apb-node: unknown argument '{args[i]}' (try --help)");
                return NodeExitCodes.BadConfiguration;
            }
        }

        NodeConfig config;
        try
        {
            config = NodeConfig.FromProcessEnvironment(configFile);
        }
        catch (NodeConfigException e)
        {
            await Console.Error.WriteLineAsync($"apb-node: configuration error: {e.Message}");
            return NodeExitCodes.BadConfiguration;
        }
        Console.WriteLine(config.Describe());

        ApbNode node;
        try
        {
            node = ApbNode.Start(config);
        }
        catch (NodeConfigException e)
        {
            await Console.Error.WriteLineAsync($"apb-node: configuration error: {e.Message}");
            return NodeExitCodes.BadConfiguration;
        }
        catch (Exception e)
        {
            await Console.Error.WriteLineAsync($"apb-node: failed to start: {e.Message}");
            return NodeExitCodes.StartupFailed;
        }
        if (node.Admin is not null)
            Console.WriteLine($"apb-node admin endpoint listening on {node.Admin.Endpoint}");
        if (node.Metrics is not null)
            Console.WriteLine($"apb-node metrics on http://{config.Ops.MetricsHost}:{node.Metrics.Port}/metrics");
        var http = await StartHttpAsync(node);

        // SIGTERM (docker stop, kill) and Ctrl+C: leave the cluster through coordinated
        // shutdown instead of vanishing, so the singleton hands over and peers don't wait
        // for the failure detector. The handler only starts it: endpoints are closed below, once.
        void Stop(PosixSignalContext ctx)
        {
            ctx.Cancel = true;
            Console.WriteLine($"apb-node: {ctx.Signal} received, leaving the cluster");
            _ = node.ShutdownAsync(CoordinatedShutdown.ClrExitReason.Instance);
        }
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);

        await node.WhenTerminated;
        if (http is not null) await http.DisposeAsync();
        await node.DisposeAsync();
        var reason = node.ShutdownReason;
        var code = NodeExitCodes.For(reason);
        Console.WriteLine($"apb-node: stopped ({NodeExitCodes.Describe(reason)}), exit {code}");
        return code;
    }

    /// <summary>The OpenAI-compatible front door, on router nodes with APB_HTTP_PORT set.</summary>
    private static async Task<HttpFrontDoor?> StartHttpAsync(ApbNode node)
    {
        var ops = node.Config.Ops;
        if (ops.HttpPort == 0 || !node.Config.Settings.HasRole(NodeRoles.Router)) return null;
        var http = await FrontDoorWiring.StartAsync(node.System, node.RouterProxy, ops);
        Console.WriteLine($"apb-node HTTP front door on {http.Address} (POST /v1/chat/completions, GET /v1/models)");
        return http;
    }
}
