using System.Net;
using System.Net.Sockets;
using ApbCluster.Admin;
using ApbCluster.Runtime.Admin;

namespace ApbCluster.Runtime.Tests.Admin;

public sealed class AdminShellTests
{
    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    private static AdminCommandRegistry Registry() => new AdminCommandRegistry()
        .Add("demo", "echo", "demo echo -m TEXT", "echo TEXT", (args, _) => Task.FromResult(AdminResponse.Ok(args.RequiredOption("-m", "TEXT"))))
        .Add("demo", "fail", "demo fail", "always fails", (_, _) => throw new InvalidOperationException("boom"));

    [Fact]
    public async Task Shell_returns_documented_exit_codes()
    {
        await using var server = new AdminServer("127.0.0.1", 0, "", Registry());
        var endpoint = $"127.0.0.1:{server.Endpoint.Port}";
        var output = new StringWriter();

        Assert.Equal(AdminExitCodes.Ok, await AdminShell.RunAsync(endpoint, ["demo", "echo", "-m", "hi"], output));
        Assert.Contains("hi", output.ToString());
        Assert.Equal(AdminExitCodes.CommandError, await AdminShell.RunAsync(endpoint, ["demo", "fail"], output));
        Assert.Contains("boom", output.ToString());
        Assert.Equal(AdminExitCodes.Usage, await AdminShell.RunAsync(endpoint, ["demo", "echo"], output));
        Assert.Equal(AdminExitCodes.Usage, await AdminShell.RunAsync(endpoint, ["no", "such"], output));
        Assert.Equal(AdminExitCodes.Ok, await AdminShell.RunAsync(endpoint, ["help"], output));
        Assert.Equal(AdminExitCodes.CannotConnect, await AdminShell.RunAsync($"127.0.0.1:{FreePort()}", ["demo", "echo"], output));
        Assert.Equal(AdminExitCodes.Usage, await AdminShell.RunAsync("no-port-here", ["demo", "echo"], output));
    }

    [Fact]
    public async Task Interactive_prompt_runs_lines_until_exit()
    {
        await using var server = new AdminServer("127.0.0.1", 0, "", Registry());
        var output = new StringWriter();
        var input = new StringReader("demo echo -m \"two words\"\n\ndemo echo -m x --json\nexit\n");
        var code = await AdminShell.RunAsync($"127.0.0.1:{server.Endpoint.Port}", [], output, input, TestContext.Current.CancellationToken);
        Assert.Equal(AdminExitCodes.Ok, code);
        Assert.Contains("two words", output.ToString());
        Assert.Contains("apb> ", output.ToString());
    }

    [Fact]
    public async Task Client_lists_palettes()
    {
        await using var server = new AdminServer("127.0.0.1", 0, "", Registry());
        await using var client = await AdminClient.ConnectAsync($"127.0.0.1:{server.Endpoint.Port}", ct: TestContext.Current.CancellationToken);
        var commands = await client.ListCommandsAsync(TestContext.Current.CancellationToken);
        Assert.Equal(["demo echo", "demo fail"], commands.Select(c => c.FullName));
    }
}
