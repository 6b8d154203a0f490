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
/// token configured non-loopback clients are refused outright, before anything they send is read.
/// Input is bounded: a request line longer than <see cref="MaxLineBytes"/> ends the connection, and a
/// non-loopback client must send its first (token-carrying) line within <see cref="FirstLineTimeout"/>;
/// one wrong token ends its connection.
/// </summary>
public sealed class AdminServer : IAsyncDisposable
{
    /// <summary>Longest request line (the longest real command is well under 1 KiB).</summary>
    public const int MaxLineBytes = 64 * 1024;

    public static readonly TimeSpan FirstLineTimeout = TimeSpan.FromSeconds(10);

    private readonly TcpListener _listener;
    private readonly AdminCommandRegistry _registry;
    private readonly string _token;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _acceptLoop;
    private readonly Func<IPAddress, bool> _isLocal;
    private int _disposed;

    /// <param name="isLocal">Which client addresses need no token; loopback unless a test says otherwise
    /// (tests must not open connections to this machine's network addresses).</param>
    public AdminServer(string host, int port, string token, AdminCommandRegistry registry, Func<IPAddress, bool>? isLocal = null)
    {
        _registry = registry;
        _token = token;
        _isLocal = isLocal ?? IPAddress.IsLoopback;
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
        var loopback = remote is not null && _isLocal(remote.Address);
        var stream = client.GetStream();
        var reader = new BoundedLineReader(stream, MaxLineBytes);
        await using var writer = new StreamWriter(stream, new UTF8Encoding(false)) { AutoFlush = true, NewLine = "\n" };
        Task Write(AdminResponse response) =>
            writer.WriteLineAsync(JsonSerializer.Serialize(response, AdminJson.Options).AsMemory(), _stop.Token);
        try
        {
            if (!loopback && _token.Length == 0)
            {
                await Write(AdminResponse.Error(NoTokenRefusal));
                return;
            }
            Task<string?>? pendingRead = loopback ? null : FirstLineAsync(reader);
            while (!_stop.IsCancellationRequested)
            {
                var line = await (pendingRead ?? reader.ReadLineAsync(_stop.Token));
                pendingRead = null;
                if (line is null) return;
                var (request, refusal) = Parse(line, loopback);
                if (refusal is not null)
                {
                    await Write(refusal);
                    if (!loopback && refusal.Text.StartsWith("refused", StringComparison.Ordinal)) return;
                }
                else if (_registry.IsStreaming(request!.Cmd))
                {
                    pendingRead = await StreamAsync(request, reader, Write);
                    if (pendingRead is { IsCompleted: true })
                    {
                        // The line that stopped the stream is consumed here; EOF ends the session.
                        if (await pendingRead is null) return;
                        pendingRead = null;
                    }
                }
                else
                    await Write(await RunAsync(request));
            }
        }
        catch (LineTooLongException e)
        {
            await Write(AdminResponse.Usage(e.Message)).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or SocketException or ObjectDisposedException)
        {
            // client went away, was too slow to say who it is, or the node is stopping
        }
    }

    private const string NoTokenRefusal = "refused: non-loopback admin access needs APB_ADMIN_TOKEN configured on the node";

    /// <summary>A non-loopback client's first line (it carries the token) must come within the bound.</summary>
    private async Task<string?> FirstLineAsync(BoundedLineReader reader)
    {
        using var first = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        first.CancelAfter(FirstLineTimeout);
        return await reader.ReadLineAsync(first.Token);
    }

    /// <summary>
    /// Runs a streaming command until it ends by itself or the client sends any line / closes.
    /// Returns the read that watched the client: still running when the stream ended by itself
    /// (it then carries the client's next request).
    /// </summary>
    private async Task<Task<string?>> StreamAsync(AdminRequest request, BoundedLineReader reader, Func<AdminResponse, Task> write)
    {
        using var streamStop = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        var clientRead = reader.ReadLineAsync(_stop.Token);
        _ = clientRead.ContinueWith(_ =>
        {
            try { streamStop.Cancel(); }
            catch (ObjectDisposedException) { /* stream already over */ }
        }, TaskScheduler.Default);
        var final = await _registry.RunAsync(request.Cmd, request.Args ?? [], line => write(line with { More = true }), streamStop.Token);
        await write(final with { More = false });
        return clientRead;
    }

    private (AdminRequest? Request, AdminResponse? Refusal) Parse(string line, bool loopback)
    {
        AdminRequest? request;
        try
        {
            request = JsonSerializer.Deserialize<AdminRequest>(line, AdminJson.Options);
        }
        catch (JsonException e)
        {
            return (null, AdminResponse.Usage($"malformed request: {e.Message}"));
        }
        if (request is null || string.IsNullOrWhiteSpace(request.Cmd))
            return (null, AdminResponse.Usage("malformed request: cmd is missing"));
        if (!loopback && (_token.Length == 0 || request.Token != _token))
            return (null, AdminResponse.Error(_token.Length == 0 ? NoTokenRefusal : "refused: wrong or missing admin token"));
        return (request, null);
    }

    private async Task<AdminResponse> RunAsync(AdminRequest request)
    {
        if (request.Cmd == AdminJson.PalettesCommand)
            return AdminResponse.Ok(string.Join('\n', _registry.Commands.Select(c => c.Usage)),
                JsonSerializer.SerializeToNode(_registry.Commands, AdminJson.Options));
        if (request.Cmd == AdminJson.StopCommand)
            return AdminResponse.Ok("no stream running");
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        timeout.CancelAfter(TimeSpan.FromSeconds(30));
        return await _registry.RunAsync(request.Cmd, request.Args ?? [], timeout.Token);
    }

    /// <summary>The refusal a request with this token would get (null = allowed); for tests and diagnostics.</summary>
    public AdminResponse? Authorize(string? token, bool loopback) =>
        Parse(JsonSerializer.Serialize(new AdminRequest("palettes", [], token), AdminJson.Options), loopback).Refusal;

    /// <summary>Idempotent: stopping twice must not touch the disposed token source.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        await _stop.CancelAsync();
        _listener.Stop();
        await _acceptLoop.WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }
}
