using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace ApbCluster.Engine.DataPlane;

/// <summary>
/// A GpuHost's data-plane listener: peers of a query connect here and say who they are
/// (<see cref="Hello"/>); the connection is handed to the rank that waits for it. One per host, opened
/// at start and advertised in RegisterHost, so no port is negotiated per query.
/// </summary>
public sealed class DataPlaneListener : IDisposable
{
    private static readonly TimeSpan HelloTimeout = TimeSpan.FromSeconds(10);

    /// <summary>Connections waiting for a rank to take them: a peer (or a stranger) announcing queries nobody runs
    /// must not hold sockets and memory without bound. A real query holds at most world size - 1 at once.</summary>
    public const int MaxUnclaimed = 256;
    private readonly TcpListener _listener;
    private readonly ConcurrentDictionary<(string Query, int From), TaskCompletionSource<Socket>> _pending = new();
    private readonly CancellationTokenSource _stop = new();

    /// <param name="bindHost">Address to bind (the node's CLUSTER_IP).</param>
    /// <param name="publicHost">Address peers use (CLUSTER_PUBLIC_HOSTNAME).</param>
    /// <param name="port">0 = any free port.</param>
    public DataPlaneListener(string bindHost, string publicHost, int port)
    {
        var address = IPAddress.TryParse(bindHost, out var ip) ? ip : Dns.GetHostAddresses(bindHost).First();
        _listener = new TcpListener(address, port);
        _listener.Start();
        Endpoint = $"{publicHost}:{((IPEndPoint)_listener.LocalEndpoint).Port}";
        _ = AcceptLoop();
    }

    /// <summary>"host:port" that peers connect to.</summary>
    public string Endpoint { get; }

    /// <summary>Connections that arrived and said who they are, not yet taken by a rank.</summary>
    public int Unclaimed => _pending.Count(p => p.Value.Task.IsCompleted);

    /// <summary>Waits for rank <paramref name="fromRank"/> of query <paramref name="queryId"/> to connect.</summary>
    public Task<Socket> WaitFor(string queryId, int fromRank) => Slot(queryId, fromRank).Task;

    /// <summary>Drops (and closes) connections of a query nobody took, e.g. after a failure.</summary>
    public void Forget(string queryId)
    {
        foreach (var key in _pending.Keys.Where(k => k.Query == queryId).ToList())
            if (_pending.TryRemove(key, out var slot) && slot.Task.IsCompletedSuccessfully)
                slot.Task.Result.Dispose();
    }

    internal void Taken(string queryId, int fromRank) => _pending.TryRemove((queryId, fromRank), out _);

    private TaskCompletionSource<Socket> Slot(string queryId, int fromRank) =>
        _pending.GetOrAdd((queryId, fromRank), _ => new TaskCompletionSource<Socket>(TaskCreationOptions.RunContinuationsAsynchronously));

    private async Task AcceptLoop()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await _listener.AcceptSocketAsync(_stop.Token);
            }
            catch (Exception) when (_stop.IsCancellationRequested)
            {
                return;
            }
            catch (SocketException)
            {
                continue;
            }
            _ = ReadHello(socket);
        }
    }

    private async Task ReadHello(Socket socket)
    {
        try
        {
            using var timeout = new CancellationTokenSource(HelloTimeout);
            var hello = await Hello.ReadAsync(socket, timeout.Token);
            var key = (hello.QueryId, hello.FromRank);
            if (!_pending.ContainsKey(key) && Unclaimed >= MaxUnclaimed)
            {
                socket.Dispose(); // nobody took the ones before it
                return;
            }
            if (!Slot(hello.QueryId, hello.FromRank).TrySetResult(socket)) socket.Dispose();
        }
        catch (Exception)
        {
            socket.Dispose(); // not one of ours, or too slow: drop it
        }
    }

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Stop();
        foreach (var slot in _pending.Values)
            if (slot.Task.IsCompletedSuccessfully) slot.Task.Result.Dispose();
        _pending.Clear();
    }
}

/// <summary>The first bytes on a data connection: magic, query id and the connecting rank.</summary>
internal readonly record struct Hello(string QueryId, int FromRank)
{
    private const uint Magic = 0x41504231; // "APB1"

    public byte[] Encode()
    {
        var id = Encoding.UTF8.GetBytes(QueryId);
        var bytes = new byte[12 + id.Length];
        BitConverter.TryWriteBytes(bytes.AsSpan(0), Magic);
        BitConverter.TryWriteBytes(bytes.AsSpan(4), FromRank);
        BitConverter.TryWriteBytes(bytes.AsSpan(8), id.Length);
        id.CopyTo(bytes, 12);
        return bytes;
    }

    public static async Task<Hello> ReadAsync(Socket socket, CancellationToken ct)
    {
        var head = new byte[12];
        await socket.ReceiveExactlyAsync(head, ct);
        if (BitConverter.ToUInt32(head, 0) != Magic) throw new InvalidDataException("not an ApbCluster data connection");
        int rank = BitConverter.ToInt32(head, 4), length = BitConverter.ToInt32(head, 8);
        if (length is < 0 or > 1024) throw new InvalidDataException($"bad query id length {length}");
        var id = new byte[length];
        await socket.ReceiveExactlyAsync(id, ct);
        return new Hello(Encoding.UTF8.GetString(id), rank);
    }
}

internal static class SocketExtensions
{
    public static async Task ReceiveExactlyAsync(this Socket socket, Memory<byte> buffer, CancellationToken ct)
    {
        while (buffer.Length > 0)
        {
            int n = await socket.ReceiveAsync(buffer, SocketFlags.None, ct);
            if (n == 0) throw new EndOfStreamException("connection closed");
            buffer = buffer[n..];
        }
    }
}
