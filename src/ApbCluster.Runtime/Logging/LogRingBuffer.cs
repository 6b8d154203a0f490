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

    private readonly List<Action<string>> _subscribers = [];

    public void Add(string line)
    {
        Action<string>[] subscribers;
        lock (_gate)
        {
            _lines[_written % _lines.Length] = line;
            _written++;
            subscribers = _subscribers.Count == 0 ? [] : [.. _subscribers];
        }
        foreach (var subscriber in subscribers) subscriber(line);
    }

    /// <summary>Calls <paramref name="onLine"/> for every line added from now on (for `log tail`); dispose to stop.</summary>
    public IDisposable Subscribe(Action<string> onLine)
    {
        lock (_gate) _subscribers.Add(onLine);
        return new Unsubscriber(() => { lock (_gate) _subscribers.Remove(onLine); });
    }

    private sealed class Unsubscriber(Action dispose) : IDisposable
    {
        public void Dispose() => dispose();
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
