using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using ApbCluster.Admin;

namespace ApbCluster.Runtime.Admin;

/// <summary>
/// The node's admin endpoint: line-delimited JSON over TCP (see AdminProtocol). Loopback
/// clients need no token; any other client must send the configured token, and with no
/// token configured non-loopback clients are refused outright.
/// </summary>
public sealed class AdminServer : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly AdminCommandRegistry _registry;
    private readonly string _token;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _acceptLoop;

    public AdminServer(string host, int port, string token, AdminCommandRegistry registry)
    {
        _registry = registry;
        _token = token;
        var address = host is "0.0.0.0" or "*" ? IPAddress.Any : IPAddress.TryParse(host, out var ip) ? ip : Dns.GetHostAddresses(host)[0];
        _listener = new TcpListener(address, port);
        _listener.Start();
        Endpoint = (IPEndPoint)_listener.LocalEndpoint;
        _acceptLoop = AcceptLoopAsync();
    }

    public IPEndPoint Endpoint { get; }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception) when (_stop.IsCancellationRequested)
            {
                return;
            }
            catch (SocketException)
            {
                continue;
            }
            _ = ServeAsync(client);
        }
    }

    private async Task ServeAsync(TcpClient client)
    {
        using var _ = client;
        var remote = (IPEndPoint?)client.Client.RemoteEndPoint;
        var loopback = remote is not null && IPAddress.IsLoopback(remote.Address);
        var stream = client.GetStream();
        using var reader = new StreamReader(stream, new UTF8Encoding(false));
        await using var writer = new StreamWriter(stream, new UTF8Encoding(false)) { AutoFlush = true, NewLine = "\n" };
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                var line = await reader.ReadLineAsync(_stop.Token);
                if (line is null) return;
                var response = await HandleAsync(line, loopback);
                await writer.WriteLineAsync(JsonSerializer.Serialize(response, AdminJson.Options).AsMemory(), _stop.Token);
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or SocketException)
        {
            // client went away or the node is stopping
        }
    }

    private async Task<AdminResponse> HandleAsync(string line, bool loopback)
    {
        AdminRequest? request;
        try
        {
            request = JsonSerializer.Deserialize<AdminRequest>(line, AdminJson.Options);
        }
        catch (JsonException e)
        {
            return AdminResponse.Usage($"malformed request: {e.Message}");
        }
        if (request is null || string.IsNullOrWhiteSpace(request.Cmd))
            return AdminResponse.Usage("malformed request: cmd is missing");
        if (!loopback && (_token.Length == 0 || request.Token != _token))
            return AdminResponse.Error(_token.Length == 0
                ? "refused: non-loopback admin access needs APB_ADMIN_TOKEN configured on the node"
                : "refused: wrong or missing admin token");
        if (request.Cmd == AdminJson.PalettesCommand)
            return AdminResponse.Ok(string.Join('\n', _registry.Commands.Select(c => c.Usage)),
                JsonSerializer.SerializeToNode(_registry.Commands, AdminJson.Options));
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        timeout.CancelAfter(TimeSpan.FromSeconds(30));
        return await _registry.RunAsync(request.Cmd, request.Args ?? [], timeout.Token);
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _acceptLoop.WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _stop.Dispose();
    }
}
