using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace ApbCluster.Admin;

/// <summary>Thrown when the endpoint cannot be reached or drops the connection.</summary>
public sealed class AdminConnectionException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// Client of a node's admin endpoint. One TCP connection, requests answered in order.
/// Every call is bounded by <see cref="Timeout"/> so a stuck node cannot hang the caller.
/// </summary>
public sealed class AdminClient : IAsyncDisposable
{
    private readonly TcpClient _tcp;
    private readonly StreamReader _reader;
    private readonly StreamWriter _writer;
    private readonly string? _token;

    private AdminClient(TcpClient tcp, string? token, TimeSpan timeout)
    {
        _tcp = tcp;
        _token = token;
        Timeout = timeout;
        var stream = tcp.GetStream();
        _reader = new StreamReader(stream, new UTF8Encoding(false));
        _writer = new StreamWriter(stream, new UTF8Encoding(false)) { AutoFlush = true, NewLine = "\n" };
    }

    public TimeSpan Timeout { get; }

    /// <param name="endpoint">host:port, e.g. 127.0.0.1:9110.</param>
    public static async Task<AdminClient> ConnectAsync(string endpoint, string? token = null, TimeSpan? timeout = null, CancellationToken ct = default)
    {
        var (host, port) = ParseEndpoint(endpoint);
        var limit = timeout ?? TimeSpan.FromSeconds(10);
        var tcp = new TcpClient { NoDelay = true };
        try
        {
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
            cts.CancelAfter(limit);
            await tcp.ConnectAsync(host, port, cts.Token);
            return new AdminClient(tcp, token, limit);
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException)
        {
            tcp.Dispose();
            throw new AdminConnectionException($"cannot connect to admin endpoint {endpoint}: {e.Message}", e);
        }
    }

    public static (string Host, int Port) ParseEndpoint(string endpoint)
    {
        var colon = endpoint.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(endpoint[(colon + 1)..], out var port) || port is < 1 or > 65535)
            throw new ArgumentException($"admin endpoint '{endpoint}' is not host:port");
        return (endpoint[..colon], port);
    }

    public async Task<AdminResponse> RunAsync(string cmd, IReadOnlyList<string> args, CancellationToken ct = default)
    {
        var line = JsonSerializer.Serialize(new AdminRequest(cmd, args, _token), AdminJson.Options);
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(Timeout);
        try
        {
            await _writer.WriteLineAsync(line.AsMemory(), cts.Token);
            var reply = await _reader.ReadLineAsync(cts.Token)
                ?? throw new AdminConnectionException("admin endpoint closed the connection");
            return JsonSerializer.Deserialize<AdminResponse>(reply, AdminJson.Options)
                ?? throw new AdminConnectionException("admin endpoint sent an empty response");
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or SocketException)
        {
            throw new AdminConnectionException($"admin endpoint did not answer '{cmd}': {e.Message}", e);
        }
    }

    /// <summary>
    /// Runs a streaming command: <paramref name="onLine"/> sees every intermediate line; the
    /// final response is returned. No overall timeout (a tail may be quiet for long); when
    /// <paramref name="ct"/> fires the client asks the node to stop and waits for the final line.
    /// </summary>
    public async Task<AdminResponse> RunStreamAsync(string cmd, IReadOnlyList<string> args, Func<AdminResponse, Task> onLine, CancellationToken ct = default)
    {
        try
        {
            await _writer.WriteLineAsync(JsonSerializer.Serialize(new AdminRequest(cmd, args, _token), AdminJson.Options));
            // Wait for lines forever, but only Timeout more once the caller asked to stop.
            using var grace = new CancellationTokenSource();
            using var stopOnCancel = ct.Register(() =>
            {
                _ = SendStopAsync();
                grace.CancelAfter(Timeout);
            });
            while (true)
            {
                var reply = await _reader.ReadLineAsync(grace.Token)
                    ?? throw new AdminConnectionException("admin endpoint closed the connection");
                var response = JsonSerializer.Deserialize<AdminResponse>(reply, AdminJson.Options)
                    ?? throw new AdminConnectionException("admin endpoint sent an empty response");
                if (!response.More) return response;
                await onLine(response);
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or SocketException)
        {
            throw new AdminConnectionException($"admin endpoint stream '{cmd}' broke off: {e.Message}", e);
        }
    }

    private async Task SendStopAsync()
    {
        try
        {
            await _writer.WriteLineAsync(JsonSerializer.Serialize(new AdminRequest(AdminJson.StopCommand, [], _token), AdminJson.Options));
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or SocketException)
        {
            // connection already gone: the stream ends anyway
        }
    }

    /// <summary>The commands this node offers.</summary>
    public async Task<IReadOnlyList<AdminCommandInfo>> ListCommandsAsync(CancellationToken ct = default)
    {
        var response = await RunAsync(AdminJson.PalettesCommand, [], ct);
        if (response.ExitCode != AdminExitCodes.Ok || response.Json is null)
            throw new AdminConnectionException($"node refused to list palettes: {response.Text}");
        return response.Json.Deserialize<List<AdminCommandInfo>>(AdminJson.Options) ?? [];
    }

    public ValueTask DisposeAsync()
    {
        _tcp.Dispose();
        return ValueTask.CompletedTask;
    }
}
