using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using ApbCluster.Admin;
using static ApbCluster.Runtime.Tests.Cluster.ClusterProcesses;

namespace ApbCluster.Runtime.Tests.Cluster;

/// <summary>
/// The admin endpoint of a real apb-node bounds what it reads: 200 MiB without a newline gets a usage error after
/// the first 64 KiB and the connection closed, the node's memory does not follow the input, and it keeps serving.
/// </summary>
[Collection(LoopbackClusterCollection.Name)]
public sealed class AdminInputClusterTests : IDisposable
{
    private const long Flood = 200L << 20;
    private readonly NodeGroup _nodes = new();

    [Fact]
    public async Task A_200_MiB_line_without_a_newline_is_cut_off_and_the_node_stays_small()
    {
        var ct = TestContext.Current.CancellationToken;
        var p = FreePorts(2);
        var node = _nodes.Start("router", BaseEnvironment(p[0], p[1], "router", $"akka.tcp://apb@127.0.0.1:{p[0]}"));
        var endpoint = $"127.0.0.1:{p[1]}";
        await using (var admin = await _nodes.ConnectAdminAsync(endpoint, TimeSpan.FromSeconds(45), ct))
            Assert.Equal(AdminExitCodes.Ok, (await admin.RunAsync("cluster show", [], ct)).ExitCode);
        var before = node.ResidentBytes();

        using var client = new TcpClient();
        await client.ConnectAsync("127.0.0.1", p[1], ct);
        var stream = client.GetStream();
        var block = Encoding.ASCII.GetBytes(new string('a', 1 << 20));
        var sent = 0L;
        var clock = Stopwatch.StartNew();
        try
        {
            for (; sent < Flood && clock.Elapsed < TimeSpan.FromSeconds(60); sent += block.Length)
                await stream.WriteAsync(block, ct);
        }
        catch (IOException)
        {
            // the node closed the connection: expected once the line passed the limit
        }
        using var reader = new StreamReader(stream);
        var reply = await reader.ReadLineAsync(ct).AsTask().WaitAsync(TimeSpan.FromSeconds(10), ct);
        var after = node.ResidentBytes();
        TestContext.Current.TestOutputHelper?.WriteLine($"sent {sent >> 20} MiB before the node closed; RSS {before >> 20} -> {after >> 20} MiB");

        Assert.NotNull(reply);
        Assert.Contains("request line longer than 65536 bytes", reply);
        Assert.True(sent < Flood, $"the node read all {Flood >> 20} MiB without closing the connection");
        Assert.True(after - before < 64L << 20, $"the node grew from {before >> 20} to {after >> 20} MiB");

        // Still serving.
        await using var again = await _nodes.ConnectAdminAsync(endpoint, TimeSpan.FromSeconds(10), ct);
        Assert.Equal(AdminExitCodes.Ok, (await again.RunAsync("cluster show", [], ct)).ExitCode);
    }

    public void Dispose() => _nodes.Dispose();
}
