using Akka.Actor;
using Akka.Configuration;
using Akka.Event;
using ApbCluster.Client.Logging;
using ApbCluster.Runtime.Logging;

namespace ApbCluster.Runtime.Tests.Logging;

public class QuietLogFilterTests
{
    private const string ProxyWarning = "ClusterSingletonProxy failed to find an associated singleton named [query-router] in role [router] after 30 seconds.";
    private const string Source = "akka.tcp://apb@127.0.0.1:4053/user/query-router-proxy";

    [Fact]
    public void The_proxy_warning_is_kept_only_when_the_proxy_has_waited_a_period()
    {
        var filter = new SingletonWaitFilter(TimeSpan.FromSeconds(30));
        var t0 = new DateTime(2026, 12, 1, 12, 0, 0, DateTimeKind.Utc);
        Assert.Equal(LogFilterDecision.Drop, filter.Decide(Source, t0));                   // the wait just began
        Assert.Equal(LogFilterDecision.Drop, filter.Decide(Source, t0));                   // the same event, asked by a second logger
        Assert.Equal(LogFilterDecision.Keep, filter.Decide(Source, t0.AddSeconds(31)));    // still no router 30 s later: real
        Assert.Equal(LogFilterDecision.Keep, filter.Decide(Source, t0.AddSeconds(61)));
        Assert.Equal(LogFilterDecision.Drop, filter.Decide(Source, t0.AddMinutes(20)));    // a hand-over much later: a new wait
        Assert.Equal(LogFilterDecision.Drop, filter.Decide(Source, t0.AddMinutes(20).AddSeconds(2)));
    }

    [Fact]
    public void Other_messages_pass_the_proxy_filter()
    {
        var filter = new SingletonWaitFilter(TimeSpan.FromSeconds(30));
        var info = new Info(Source, typeof(QuietLogFilterTests), ProxyWarning);
        Assert.Equal(LogFilterDecision.Keep, filter.ShouldKeepMessage(info, info.ToString()));
        var other = new Warning(Source, typeof(QuietLogFilterTests), "something else");
        Assert.Equal(LogFilterDecision.Keep, filter.ShouldKeepMessage(other, other.ToString()));
        var proxy = new Warning(Source, typeof(QuietLogFilterTests), ProxyWarning);
        Assert.Equal(LogFilterDecision.Drop, filter.ShouldKeepMessage(proxy, proxy.ToString()));
    }

    [Fact]
    public async Task The_closing_channel_warning_is_dropped_only_once_the_system_shuts_down()
    {
        var filter = new ShutdownChannelNoiseFilter();
        var system = ActorSystem.Create("quiet-test", ConfigurationFactory.ParseString("akka.loglevel = WARNING"));
        filter.Watch(system);
        var warning = new Warning("DotNettyTransport", typeof(QuietLogFilterTests),
            "Unable to REMOVE channel [[::ffff:127.0.0.1]:4053->[::ffff:127.0.0.1]:50000](Id=1) from connection group. May not shut down cleanly.");
        Assert.Equal(LogFilterDecision.Keep, filter.ShouldKeepMessage(warning, warning.ToString())); // running: a real fault
        await system.Terminate();
        Assert.Equal(LogFilterDecision.Drop, filter.ShouldKeepMessage(warning, warning.ToString()));
        var other = new Warning("DotNettyTransport", typeof(QuietLogFilterTests), "Error caught channel");
        Assert.Equal(LogFilterDecision.Keep, filter.ShouldKeepMessage(other, other.ToString()));
    }
}
