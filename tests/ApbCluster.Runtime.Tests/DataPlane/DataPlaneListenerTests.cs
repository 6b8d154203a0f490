using System.Net.Sockets;
using System.Text;
using ApbCluster.Engine.DataPlane;

namespace ApbCluster.Runtime.Tests.DataPlane;

/// <summary>A host's data-plane listener bounds what strangers can make it hold.</summary>
public sealed class DataPlaneListenerTests
{
    [Fact]
    public async Task Connections_announcing_queries_nobody_runs_are_held_up_to_the_bound_then_closed()
    {
        var ct = TestContext.Current.CancellationToken;
        using var listener = new DataPlaneListener("127.0.0.1", "127.0.0.1", 0);
        var port = int.Parse(listener.Endpoint.Split(':')[1]);
        var clients = new List<TcpClient>();
        try
        {
            for (var i = 0; i < DataPlaneListener.MaxUnclaimed + 1; i++)
            {
                var client = new TcpClient();
                await client.ConnectAsync("127.0.0.1", port, ct);
                await client.GetStream().WriteAsync(Hello($"stranger-{i}", 1), ct);
                clients.Add(client);
                if (i < DataPlaneListener.MaxUnclaimed)
                    await WaitHeld(listener, i + 1, ct); // the listener took it before the next one comes
            }
            // The one over the bound is closed by the listener: its read ends.
            var buffer = new byte[1];
            var read = await clients[^1].GetStream().ReadAsync(buffer, ct).AsTask().WaitAsync(TimeSpan.FromSeconds(10), ct);
            Assert.Equal(0, read);
            Assert.Equal(DataPlaneListener.MaxUnclaimed, listener.Unclaimed);
        }
        finally
        {
            clients.ForEach(c => c.Dispose());
        }
    }

    private static async Task WaitHeld(DataPlaneListener listener, int count, CancellationToken ct)
    {
        for (var waited = 0; listener.Unclaimed < count; waited += 10)
        {
            Assert.True(waited < 10_000, $"the listener holds {listener.Unclaimed}, expected {count}");
            await Task.Delay(10, ct);
        }
    }

    /// <summary>The first bytes a rank sends: magic "APB1", its rank, the query id.</summary>
    private static byte[] Hello(string queryId, int rank)
    {
        var id = Encoding.UTF8.GetBytes(queryId);
        var bytes = new byte[12 + id.Length];
        BitConverter.TryWriteBytes(bytes.AsSpan(0), 0x41504231u);
        BitConverter.TryWriteBytes(bytes.AsSpan(4), rank);
        BitConverter.TryWriteBytes(bytes.AsSpan(8), id.Length);
        id.CopyTo(bytes, 12);
        return bytes;
    }
}
