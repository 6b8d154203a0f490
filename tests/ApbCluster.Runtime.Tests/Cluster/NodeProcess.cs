using System.Diagnostics;
using System.Text;

namespace ApbCluster.Runtime.Tests.Cluster;

/// <summary>An apb-node child process; output captured for failure messages; always killed on Dispose.</summary>
public sealed class NodeProcess : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();

    public NodeProcess(string name, IReadOnlyDictionary<string, string> env)
    {
        Name = name;
        var dll = LocateNode();
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(dll);
        foreach (var (key, value) in env) start.Environment[key] = value;
        _process = new Process { StartInfo = start };
        _process.OutputDataReceived += (_, e) => Append(e.Data);
        _process.ErrorDataReceived += (_, e) => Append(e.Data);
        _process.Start();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public string Name { get; }

    public bool HasExited => _process.HasExited;

    public string Output
    {
        get { lock (_output) return _output.ToString(); }
    }

    /// <summary>SIGKILL: the node gets no chance to leave; the cluster must detect and down it.</summary>
    public void Kill() => _process.Kill(entireProcessTree: true);

    /// <summary>SIGSTOP: the process stays alive but silent (no FIN, no heartbeats), like a partitioned host.
    /// Dispose still SIGKILLs it.</summary>
    public void Freeze() => Signal("-STOP");

    /// <summary>SIGCONT: a frozen process runs again.</summary>
    public void Thaw() => Signal("-CONT");

    /// <summary>SIGTERM: what docker stop and systemd send; the node should leave and exit 0.</summary>
    public void Terminate() => Signal("-TERM");

    public int ExitCode => _process.ExitCode;

    public int Pid => _process.Id;

    /// <summary>Resident memory (VmRSS) in bytes, from /proc.</summary>
    public long ResidentBytes()
    {
        var line = File.ReadLines($"/proc/{_process.Id}/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
    }

    /// <summary>Waits for the process to exit; false when it still runs after <paramref name="bound"/>.</summary>
    public async Task<bool> WaitForExitAsync(TimeSpan bound)
    {
        using var timeout = new CancellationTokenSource(bound);
        try
        {
            await _process.WaitForExitAsync(timeout.Token);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private void Signal(string signal)
    {
        using var kill = Process.Start("kill", [signal, _process.Id.ToString()]);
        kill.WaitForExit();
    }

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                _process.WaitForExit(5000);
            }
        }
        catch (InvalidOperationException)
        {
            // already gone
        }
        _process.Dispose();
    }

    private void Append(string? line)
    {
        if (line is null) return;
        lock (_output) _output.AppendLine(line);
    }

    /// <summary>apb-node.dll next to the tests (project reference), else under src/ApbCluster.Node/bin.</summary>
    private static string LocateNode()
    {
        var local = Path.Combine(AppContext.BaseDirectory, "apb-node.dll");
        if (File.Exists(local) && File.Exists(Path.Combine(AppContext.BaseDirectory, "apb-node.runtimeconfig.json")))
            return local;
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var bin = Path.Combine(dir.FullName, "src", "ApbCluster.Node", "bin");
            if (Directory.Exists(bin))
            {
                var found = Directory.GetFiles(bin, "apb-node.dll", SearchOption.AllDirectories).OrderByDescending(File.GetLastWriteTimeUtc).FirstOrDefault();
                if (found is not null) return found;
            }
        }
        throw new FileNotFoundException("apb-node.dll not found next to the tests nor under src/ApbCluster.Node/bin; build src/ApbCluster.Node");
    }
}
