using System.Net;
using Akka.Actor;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace ApbCluster.Http;

/// <summary>
/// The OpenAI-compatible HTTP server of a router node: Kestrel with minimal APIs, no MVC.
/// Binds loopback unless APB_HTTP_HOST says otherwise. Requests reach the router through the
/// actor API (the singleton proxy), exactly like any other client.
/// </summary>
public sealed class HttpFrontDoor : IAsyncDisposable
{
    private readonly WebApplication _app;

    private HttpFrontDoor(WebApplication app, Uri address)
    {
        _app = app;
        Address = address;
    }

    /// <summary>Base address actually bound, e.g. http://127.0.0.1:8080 (the real port when 0 was asked for).</summary>
    public Uri Address { get; }

    /// <param name="health">GET /health's rule; <paramref name="metrics"/>: where requests and refusals are counted.</param>
    public static async Task<HttpFrontDoor> StartAsync(ActorSystem system, IActorRef router, HttpSettings settings, IRouterHealth health,
        IFrontDoorMetrics metrics)
    {
        var (host, port) = (settings.Host, settings.Port);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Services.AddSingleton(metrics);
        // Kestrel and hosting log every request at info; the node's own log is enough, and
        // request logs are where prompt text would leak.
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            var ip = host is "0.0.0.0" or "*" ? IPAddress.Any : IPAddress.TryParse(host, out var parsed) ? parsed : Dns.GetHostAddresses(host)[0];
            k.Listen(ip, port);
            // Room for the longest accepted document in JSON (escapes, multi-byte UTF-8) plus the rest; beyond: 413.
            k.Limits.MaxRequestBodySize = Math.Min((long)settings.MaxContextChars * 6 + (1 << 20), int.MaxValue);
            k.AddServerHeader = false;
        });
        var app = builder.Build();
        var log = Akka.Event.Logging.GetLogger(system, "http");
        app.Use((ctx, next) => RequestIds.Middleware(ctx, next, log));
        // Router failover only exists in a cluster (an in-process ActorSystem has no singleton to lose).
        var watch = ((ExtendedActorSystem)system).Provider is Akka.Cluster.ClusterActorRefProvider
            ? system.ActorOf(RouterWatch.Props(), $"http-router-watch-{port}")
            : null;
        var chat = new ChatCompletionsHandler(system, router, watch, settings, metrics);
        app.MapPost("/v1/chat/completions", chat.HandleAsync);
        app.MapGet("/v1/models", (HttpContext ctx) => ModelsHandler.ListAsync(ctx, router));
        app.MapGet("/v1/models/{**id}", (HttpContext ctx, string id) => ModelsHandler.GetAsync(ctx, router, id));
        app.MapGet("/health", (HttpContext ctx) => HealthHandler.GetAsync(ctx, health));
        app.MapFallback((HttpContext ctx) => HttpResults.Error(ctx, new OpenAiError(404,
            $"no route {ctx.Request.Method} {ctx.Request.Path} (this server offers POST /v1/chat/completions, GET /v1/models, GET /v1/models/{{id}} and GET /health)",
            "invalid_request_error", null, "not_found"), "other"));
        await app.StartAsync();
        var bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new HttpFrontDoor(app, new Uri(bound.Replace("0.0.0.0", "127.0.0.1", StringComparison.Ordinal)));
    }

    public async ValueTask DisposeAsync()
    {
        using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        await _app.StopAsync(grace.Token);
        await _app.DisposeAsync();
    }
}
