using Akka.Actor;

namespace ApbCluster.Runtime.Logging;

/// <summary>
/// The last N log lines of this ActorSystem, for `log peek`. An extension so the logger
/// actor (created by Akka from HOCON) and the admin commands find the same buffer.
/// </summary>
public sealed class LogRingBuffer : IExtension
{
    private readonly object _gate = new();
    private readonly string[] _lines;
    private long _written;

    public LogRingBuffer(int capacity) => _lines = new string[Math.Max(1, capacity)];

    public int Capacity => _lines.Length;

    public void Add(string line)
    {
        lock (_gate)
        {
            _lines[_written % _lines.Length] = line;
            _written++;
        }
    }

    /// <summary>The most recent <paramref name="count"/> lines, oldest first.</summary>
    public IReadOnlyList<string> Last(int count)
    {
        lock (_gate)
        {
            var available = (int)Math.Min(_written, _lines.Length);
            var n = Math.Clamp(count, 0, available);
            var result = new string[n];
            for (var i = 0; i < n; i++)
                result[i] = _lines[(_written - n + i) % _lines.Length];
            return result;
        }
    }

    public static LogRingBuffer Get(ActorSystem system) => system.WithExtension<LogRingBuffer, LogRingBufferProvider>();
}

public sealed class LogRingBufferProvider : ExtensionIdProvider<LogRingBuffer>
{
    public override LogRingBuffer CreateExtension(ExtendedActorSystem system) =>
        new(system.Settings.Config.GetInt("apb.log-ring-buffer-size", 2000));
}
