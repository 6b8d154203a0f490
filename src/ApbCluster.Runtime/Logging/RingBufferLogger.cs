using System.Globalization;
using Akka.Actor;
using Akka.Dispatch;
using Akka.Event;

namespace ApbCluster.Runtime.Logging;

/// <summary>
/// Akka logger (listed in akka.loggers) that copies each log event into
/// <see cref="LogRingBuffer"/>; stdout printing stays with Akka's DefaultLogger.
/// </summary>
public sealed class RingBufferLogger : ReceiveActor, IRequiresMessageQueue<ILoggerMessageQueueSemantics>
{
    public RingBufferLogger()
    {
        var buffer = LogRingBuffer.Get(Context.System);
        Receive<InitializeLogger>(_ => Sender.Tell(new LoggerInitialized()));
        var filter = Context.System.Settings.LogFilter; // the same filters as stdout (QuietActorSystem)
        Receive<LogEvent>(e =>
        {
            if (filter.ShouldTryKeepMessage(e, out _)) buffer.Add(Format(e));
        });
    }

    private static string Format(LogEvent e)
    {
        var level = e.LogLevel().ToString().Replace("Level", "", StringComparison.Ordinal).ToUpperInvariant();
        var text = $"{e.Timestamp.ToString("yyyy-MM-dd HH:mm:ss.fff", CultureInfo.InvariantCulture)} {level,-7} [{e.LogSource}] {e.Message}";
        return e.Cause is null ? text : $"{text} | {e.Cause.GetType().Name}: {e.Cause.Message}";
    }
}
