using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using ApbCluster.Contracts;
using ApbCluster.Runtime.Metrics;

namespace ApbCluster.Runtime.Tests.Ops;

public sealed class MetricsEndpointTests
{
    [Fact]
    public async Task Scrape_shows_counters_moving_after_calls()
    {
        var ct = TestContext.Current.CancellationToken;
        using var endpoint = new MetricsEndpoint("127.0.0.1", FreePort(), routerProxy: null, localHosts: []);
        using var http = new HttpClient();
        var url = $"http://127.0.0.1:{endpoint.Port}/metrics";

        var before = await http.GetStringAsync(url, ct);
        ApbMetrics.QueryCompleted("ok", new PhaseTimings(1, 2, 300, 320, 1000, 1400), generatedTokens: 50, promptTokens: 1000);
        ApbMetrics.QueryFailed(hostFault: true);
        ApbMetrics.QueryRefused("busy");
        ApbMetrics.NcclAbort("h0");
        ApbMetrics.SetHosts([new HostStatus("h-metrics", "a", "cuda:0", 5, 10, "m", HostState.Ready, 1234, 700, 900, 567)]);
        var after = await http.GetStringAsync(url, ct);

        Assert.Equal(Value(before, "apb_queries_total{outcome=\"ok\"}") + 1, Value(after, "apb_queries_total{outcome=\"ok\"}"));
        Assert.Equal(Value(before, "apb_queries_total{outcome=\"failed\"}") + 1, Value(after, "apb_queries_total{outcome=\"failed\"}"));
        Assert.Equal(Value(before, "apb_queries_total{outcome=\"busy\"}") + 1, Value(after, "apb_queries_total{outcome=\"busy\"}"));
        Assert.Equal(Value(before, "apb_generated_tokens_total") + 50, Value(after, "apb_generated_tokens_total"));
        Assert.Equal(Value(before, "apb_query_phase_seconds_count{phase=\"prefill\"}") + 1, Value(after, "apb_query_phase_seconds_count{phase=\"prefill\"}"));
        Assert.Equal(Value(before, "apb_nccl_aborts_total{host=\"h0\"}") + 1, Value(after, "apb_nccl_aborts_total{host=\"h0\"}"));
        Assert.Equal(1234, Value(after, "apb_host_kv_bytes{host=\"h-metrics\"}"));
        Assert.Equal(567, Value(after, "apb_host_kv_host_bytes{host=\"h-metrics\"}"));
        Assert.Equal(900, Value(after, "apb_host_host_memory_total_bytes{host=\"h-metrics\"}"));
        Assert.Contains("apb_decode_tokens_per_second_count", after);
    }

    /// <summary>Prometheus targets are often written as localhost:PORT or a DNS name: the Host header must not matter.</summary>
    [Theory]
    [InlineData("localhost")]
    [InlineData("metrics.example")]
    public async Task Scrape_answers_whatever_the_host_header_says(string hostHeader)
    {
        var ct = TestContext.Current.CancellationToken;
        using var endpoint = new MetricsEndpoint("127.0.0.1", FreePort(), routerProxy: null, localHosts: []);
        using var http = new HttpClient();
        using var request = new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{endpoint.Port}/metrics");
        request.Headers.Host = $"{hostHeader}:{endpoint.Port}";
        using var response = await http.SendAsync(request, ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.StartsWith("text/plain", response.Content.Headers.ContentType!.MediaType);
        Assert.Contains("dotnet_collection_count_total", await response.Content.ReadAsStringAsync(ct));
    }

    [Fact]
    public async Task Metrics_and_http_are_off_by_default_and_loopback_when_enabled()
    {
        var settings = ApbCluster.Runtime.Config.NodeConfig.Load(new Dictionary<string, string?> { ["APB_METRICS_PORT"] = "9464" }).Ops;
        Assert.Equal(("127.0.0.1", 9464), (settings.MetricsHost, settings.MetricsPort));
        var defaults = ApbCluster.Runtime.Config.NodeConfig.Load(new Dictionary<string, string?>()).Ops;
        Assert.Equal((0, 0, "127.0.0.1"), (defaults.MetricsPort, defaults.HttpPort, defaults.HttpHost));
        await Task.CompletedTask;
    }

    /// <summary>A sample's value, 0 when the series does not exist yet.</summary>
    private static double Value(string scrape, string series)
    {
        var m = Regex.Match(scrape, "^" + Regex.Escape(series) + @" (\S+)$", RegexOptions.Multiline);
        return m.Success ? double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : 0;
    }

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }
}
