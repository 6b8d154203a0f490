using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using ApbCluster.Admin;
using ApbCluster.Runtime.Admin;

namespace ApbCluster.Runtime.Tests.Admin;

public sealed class AdminStreamingTests
{
    /// <summary>"demo count -n N" emits N lines; "demo forever" emits until stopped.</summary>
    private static AdminCommandRegistry Registry() => new AdminCommandRegistry()
        .Add("demo", "echo", "demo echo -m TEXT", "echo", (args, _) => Task.FromResult(AdminResponse.Ok(args.RequiredOption("-m", "TEXT"))))
        .AddStream("demo", "count", "demo count -n N", "count", async (args, emit, _) =>
        {
            var n = args.IntOption("-n", 3, 1, 100);
            for (var i = 1; i <= n; i++) await emit(AdminResponse.Line($"line {i}"));
            return AdminResponse.Ok("done");
        })
        .AddStream("demo", "forever", "demo forever", "until stopped", async (_, emit, ct) =>
        {
            for (var i = 0; ; i++)
            {
                await emit(AdminResponse.Line($"tick {i}"));
                await Task.Delay(20, ct);
            }
        });

    [Fact]
    public async Task Stream_sends_lines_then_a_final_response_and_the_connection_stays_usable()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var server = new AdminServer("127.0.0.1", 0, "", Registry());
        await using var client = await AdminClient.ConnectAsync($"127.0.0.1:{server.Endpoint.Port}", ct: ct);
        var lines = new List<string>();
        var final = await client.RunStreamAsync("demo count", ["-n", "4"], l => { lines.Add(l.Text); return Task.CompletedTask; }, ct);
        Assert.Equal(["line 1", "line 2", "line 3", "line 4"], lines);
        Assert.Equal("done", final.Text);
        Assert.False(final.More);
        Assert.Equal("again", (await client.RunAsync("demo echo", ["-m", "again"], ct)).Text);
    }

    [Fact]
    public async Task Cancelling_a_stream_stops_it_on_the_server_and_the_next_request_works()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var server = new AdminServer("127.0.0.1", 0, "", Registry());
        await using var client = await AdminClient.ConnectAsync($"127.0.0.1:{server.Endpoint.Port}", ct: ct);
        using var stop = new CancellationTokenSource();
        var seen = 0;
        var final = await client.RunStreamAsync("demo forever", [], _ =>
        {
            if (++seen == 5) stop.Cancel();
            return Task.CompletedTask;
        }, stop.Token);
        Assert.Equal(AdminExitCodes.Ok, final.ExitCode);
        Assert.Equal("stream stopped", final.Text);
        Assert.Equal("after", (await client.RunAsync("demo echo", ["-m", "after"], ct)).Text);
    }

    [Fact]
    public async Task Shell_prints_stream_lines_and_reports_usage_errors()
    {
        await using var server = new AdminServer("127.0.0.1", 0, "", Registry());
        var endpoint = $"127.0.0.1:{server.Endpoint.Port}";
        var output = new StringWriter();
        Assert.Equal(AdminExitCodes.Ok, await AdminShell.RunAsync(endpoint, ["demo", "count", "-n", "2"], output));
        Assert.Contains("line 1\nline 2\ndone", output.ToString().ReplaceLineEndings("\n"));
        Assert.Equal(AdminExitCodes.Usage, await AdminShell.RunAsync(endpoint, ["demo", "count", "-n", "zero"], output));
    }

    [Fact]
    public async Task Non_loopback_client_without_the_token_is_refused()
    {
        // Connections stay on 127.0.0.1 (tests never dial this machine's network addresses); the server is
        // told that 127.0.0.1 is remote and 127.0.0.2 local, so both sides of the token rule are exercised.
        var ct = TestContext.Current.CancellationToken;
        static bool OnlyDotTwoIsLocal(IPAddress a) => a.Equals(IPAddress.Parse("127.0.0.2"));
        await using var server = new AdminServer("127.0.0.1", 0, "s3cret", Registry(), OnlyDotTwoIsLocal);
        var endpoint = $"127.0.0.1:{server.Endpoint.Port}";

        await using (var anonymous = await AdminClient.ConnectAsync(endpoint, ct: ct))
        {
            var refused = await anonymous.RunAsync("demo echo", ["-m", "x"], ct);
            Assert.Equal(AdminExitCodes.CommandError, refused.ExitCode);
            Assert.Contains("refused", refused.Text);
        }
        await using (var wrong = await AdminClient.ConnectAsync(endpoint, "nope", ct: ct))
            Assert.Equal(AdminExitCodes.CommandError, (await wrong.RunAsync("demo echo", ["-m", "x"], ct)).ExitCode);
        await using (var withToken = await AdminClient.ConnectAsync(endpoint, "s3cret", ct: ct))
            Assert.Equal("x", (await withToken.RunAsync("demo echo", ["-m", "x"], ct)).Text);
        // A node with no token configured refuses every non-local client.
        await using var tokenless = new AdminServer("127.0.0.1", 0, "", Registry(), OnlyDotTwoIsLocal);
        await using (var client = await AdminClient.ConnectAsync($"127.0.0.1:{tokenless.Endpoint.Port}", "anything", ct: ct))
            Assert.Contains("needs APB_ADMIN_TOKEN", (await client.RunAsync("demo echo", ["-m", "x"], ct)).Text);
        // ... before it reads a byte of theirs: the refusal comes to a client that sent nothing, and the connection ends.
        using var silent = new System.Net.Sockets.TcpClient();
        await silent.ConnectAsync("127.0.0.1", tokenless.Endpoint.Port, ct);
        using var reader = new StreamReader(silent.GetStream());
        Assert.Contains("needs APB_ADMIN_TOKEN", await reader.ReadLineAsync(ct).AsTask().WaitAsync(TimeSpan.FromSeconds(10), ct));
        Assert.Null(await reader.ReadLineAsync(ct).AsTask().WaitAsync(TimeSpan.FromSeconds(10), ct));
    }

    [Fact]
    public async Task Loopback_clients_need_no_token_by_default()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var server = new AdminServer("127.0.0.1", 0, "s3cret", Registry());
        await using var local = await AdminClient.ConnectAsync($"127.0.0.1:{server.Endpoint.Port}", ct: ct);
        Assert.Equal("y", (await local.RunAsync("demo echo", ["-m", "y"], ct)).Text);
    }
}
