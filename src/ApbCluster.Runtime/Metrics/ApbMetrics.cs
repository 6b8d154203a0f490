using ApbCluster.Contracts;
using Prometheus;

namespace ApbCluster.Runtime.Metrics;

/// <summary>
/// Every ApbCluster metric, under the <c>apb_</c> prefix, on prometheus-net's default registry
/// (served by <see cref="MetricsEndpoint"/>). Static so any layer can call it without plumbing;
/// each call is a few atomic adds. Call sites:
/// <list type="bullet">
/// <item>router: through <see cref="Ops.RouterOps.Observe"/> (query outcomes, phases, tokens), or directly
///   <see cref="QueryCompleted"/> / <see cref="QueryFailed"/> / <see cref="QueryRefused"/> on RouterBusy;</item>
/// <item>router: <see cref="SetQueue"/> when the queue or in-flight count changes (also refreshed from
///   GetClusterStatus at each scrape);</item>
/// <item>GpuHost: <see cref="PrefillLayer"/> after each layer, <see cref="NcclAbort"/> when a
///   communicator is aborted, <see cref="NcclRing"/> when a query joins or reuses a warm NCCL ring; host memory and KV are refreshed at each scrape from ClusterStatus;</item>
/// <item>HTTP front door: <see cref="HttpRequest"/>.</item>
/// </list>
/// </summary>
public static class ApbMetrics
{
    private static readonly double[] SecondsBuckets = Histogram.ExponentialBuckets(0.005, 2, 18); // 5 ms .. ~11 min

    private static readonly Counter Queries = Prometheus.Metrics.CreateCounter(
        "apb_queries_total", "Queries by outcome: ok, cancelled, failed, busy, rejected.", "outcome");

    private static readonly Counter Submitted = Prometheus.Metrics.CreateCounter(
        "apb_queries_submitted_total", "Queries admitted by the router.");

    private static readonly Counter HostFaults = Prometheus.Metrics.CreateCounter(
        "apb_query_host_failures_total", "Failed queries that named a failing host.");

    private static readonly Histogram PhaseSeconds = Prometheus.Metrics.CreateHistogram(
        "apb_query_phase_seconds", "Wall time per query phase: queue, plan, prefill, ttft, decode, total.",
        new HistogramConfiguration { LabelNames = ["phase"], Buckets = SecondsBuckets });

    private static readonly Histogram PrefillLayerSeconds = Prometheus.Metrics.CreateHistogram(
        "apb_prefill_layer_seconds", "Wall time of one layer's prefill on one host.",
        new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.0005, 2, 16) });

    private static readonly Counter GeneratedTokens = Prometheus.Metrics.CreateCounter(
        "apb_generated_tokens_total", "Tokens generated (decode) over all queries.");

    private static readonly Counter PromptTokens = Prometheus.Metrics.CreateCounter(
        "apb_prompt_tokens_total", "Prompt (context + question) tokens prefilled over all queries.");

    private static readonly Histogram DecodeTokensPerSecond = Prometheus.Metrics.CreateHistogram(
        "apb_decode_tokens_per_second", "Decode speed per query (generated tokens / decode seconds).",
        new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.5, 2, 14) });

    private static readonly Gauge QueueDepth = Prometheus.Metrics.CreateGauge(
        "apb_router_queue_depth", "Queries waiting in the router's queue.");

    private static readonly Gauge InFlight = Prometheus.Metrics.CreateGauge(
        "apb_router_in_flight", "Queries the router is running.");

    private static readonly Gauge HostKvBytes = Prometheus.Metrics.CreateGauge(
        "apb_host_kv_bytes", "KV cache bytes held by a GPU host.", "host");

    private static readonly Gauge HostMemoryUsed = Prometheus.Metrics.CreateGauge(
        "apb_host_gpu_memory_used_bytes", "Device memory in use on a GPU host.", "host");

    private static readonly Gauge HostMemoryTotal = Prometheus.Metrics.CreateGauge(
        "apb_host_gpu_memory_total_bytes", "Device memory of a GPU host.", "host");

    private static readonly Gauge HostKvHostBytes = Prometheus.Metrics.CreateGauge(
        "apb_host_kv_host_bytes", "ShadowKV values a GPU host holds in host memory.", "host");

    private static readonly Gauge HostHostMemoryUsed = Prometheus.Metrics.CreateGauge(
        "apb_host_host_memory_used_bytes", "Host memory in use as ShadowKV values see it (held against apb.gpu-host.host-kv-memory, or the machine's).", "host");

    private static readonly Gauge HostHostMemoryTotal = Prometheus.Metrics.CreateGauge(
        "apb_host_host_memory_total_bytes", "Host memory ShadowKV values may take (apb.gpu-host.host-kv-memory, or the machine's).", "host");

    private static readonly Gauge HostsRegistered = Prometheus.Metrics.CreateGauge(
        "apb_router_hosts", "GPU hosts registered with the router.");

    private static readonly Counter NcclAborts = Prometheus.Metrics.CreateCounter(
        "apb_nccl_aborts_total", "NCCL communicators aborted (peer died, watchdog, deadline).", "host");

    private static readonly Counter NcclRings = Prometheus.Metrics.CreateCounter(
        "apb_nccl_ring_uses_total", "Queries run on an NCCL ring, by whether the communicator was joined for it or reused warm.", "host", "communicator");

    private static readonly Counter HttpRequests = Prometheus.Metrics.CreateCounter(
        "apb_http_requests_total", "HTTP front door requests by route and status code.", "route", "status");

    public static void QuerySubmitted() => Submitted.Inc();

    /// <param name="outcome">"ok" or "cancelled".</param>
    public static void QueryCompleted(string outcome, PhaseTimings timings, int generatedTokens, int promptTokens = 0)
    {
        Queries.WithLabels(outcome).Inc();
        Phase("queue", timings.QueueMs);
        Phase("plan", timings.PlanMs);
        Phase("prefill", timings.PrefillMs);
        Phase("ttft", timings.TimeToFirstTokenMs);
        Phase("decode", timings.DecodeMs);
        Phase("total", timings.TotalMs);
        GeneratedTokens.Inc(Math.Max(0, generatedTokens));
        PromptTokens.Inc(Math.Max(0, promptTokens));
        if (generatedTokens > 0 && timings.DecodeMs > 0)
            DecodeTokensPerSecond.Observe(generatedTokens / (timings.DecodeMs / 1000.0));
    }

    public static void QueryFailed(bool hostFault = false)
    {
        Queries.WithLabels("failed").Inc();
        if (hostFault) HostFaults.Inc();
    }

    public static void QueryCancelled() => Queries.WithLabels("cancelled").Inc();

    /// <param name="why">"busy" (router queue full) or "rejected" (limits, bad request).</param>
    public static void QueryRefused(string why) => Queries.WithLabels(why).Inc();

    public static void PrefillLayer(double seconds) => PrefillLayerSeconds.Observe(seconds);

    public static void SetQueue(int queueDepth, int inFlight)
    {
        QueueDepth.Set(queueDepth);
        InFlight.Set(inFlight);
    }

    private static readonly HashSet<string> KnownHosts = [];

    /// <summary>The router's full host list: hosts that left lose their series instead of going stale.</summary>
    public static void SetHosts(IReadOnlyList<HostStatus> hosts)
    {
        HostsRegistered.Set(hosts.Count);
        lock (KnownHosts)
        {
            foreach (var gone in KnownHosts.Except(hosts.Select(h => h.HostId)).ToList())
            {
                HostKvBytes.RemoveLabelled(gone);
                HostMemoryUsed.RemoveLabelled(gone);
                HostMemoryTotal.RemoveLabelled(gone);
                HostKvHostBytes.RemoveLabelled(gone);
                HostHostMemoryUsed.RemoveLabelled(gone);
                HostHostMemoryTotal.RemoveLabelled(gone);
                KnownHosts.Remove(gone);
            }
            foreach (var h in hosts)
            {
                SetHost(h);
                KnownHosts.Add(h.HostId);
            }
        }
    }

    public static void SetHost(HostStatus host)
    {
        HostKvBytes.WithLabels(host.HostId).Set(host.KvBytes);
        HostMemoryUsed.WithLabels(host.HostId).Set(host.MemoryUsedBytes);
        HostMemoryTotal.WithLabels(host.HostId).Set(host.MemoryTotalBytes);
        HostKvHostBytes.WithLabels(host.HostId).Set(host.HostKvBytes);
        HostHostMemoryUsed.WithLabels(host.HostId).Set(host.HostMemoryUsedBytes);
        HostHostMemoryTotal.WithLabels(host.HostId).Set(host.HostMemoryTotalBytes);
    }

    public static void NcclAbort(string hostId) => NcclAborts.WithLabels(hostId).Inc();

    /// <summary>A query's rank got its NCCL communicator: joined for it, or reused from the ring's earlier queries.</summary>
    public static void NcclRing(string hostId, bool reused) => NcclRings.WithLabels(hostId, reused ? "reused" : "joined").Inc();

    public static void HttpRequest(string route, int status) => HttpRequests.WithLabels(route, status.ToString(System.Globalization.CultureInfo.InvariantCulture)).Inc();

    private static void Phase(string phase, double ms)
    {
        if (ms > 0) PhaseSeconds.WithLabels(phase).Observe(ms / 1000.0);
    }
}
