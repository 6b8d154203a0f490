using System.Text.Json;
using ApbCluster.Client;
using ApbCluster.Contracts;

namespace ApbCluster.Runtime.Tests.Cluster;

/// <summary>
/// Several queries share the hosts of a real loopback cluster (a router and 2 gpu-host node processes, random:tiny:7):
/// 8 queries with different documents sent at once all complete, their computing intervals on the router's clock
/// overlap, and each answer's ids equal the same query run alone afterwards (greedy). Admission by KV memory (hosts
/// with a small apb.gpu-host.kv-memory budget): a query too large for an idle cluster is refused at once with the
/// figures; two that each fit alone but not together run one after the other. A prefill layer delay on the hosts
/// makes each query last long enough for overlap (or its absence) to be seen. With ShadowKV (and a host KV budget too)
/// a query too large for full KV is admitted and answers, and one whose values exceed the hosts' budget is refused.
/// </summary>
[Collection(LoopbackClusterCollection.Name)]
public sealed class ConcurrentQueriesClusterTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromMinutes(3); // a hang guard only

    [Fact]
    public async Task Eight_queries_sent_at_once_overlap_and_each_equals_the_same_query_run_alone()
    {
        var ct = TestContext.Current.CancellationToken;
        var output = TestContext.Current.TestOutputHelper!;
        using var cluster = await LoopbackCluster.StartAsync(hostNodes: 2,
            routerEnv: new Dictionary<string, string> { ["APB_ROUTER_MAX_IN_FLIGHT"] = "8" },
            hostEnv: new Dictionary<string, string> { ["APB_MAX_QUERIES"] = "8", ["APB_TEST_LAYER_DELAY_MS"] = "150" }, ct: ct);
        await using var client = cluster.Connect(idleTimeout: Bound);
        var queries = Enumerable.Range(0, 8).Select(i => Query($"together-{i}", documentTokens: 200 + 20 * i, seed: i, maxNew: 6)).ToList();

        var together = await Task.WhenAll(queries.Select(q => AskAsync(client, q, ct)));
        foreach (var (q, done) in queries.Zip(together))
            Assert.True(done is QueryCompleted, $"{q.QueryId}: {done}\n{cluster.Outputs()}");
        var completed = together.Cast<QueryCompleted>().ToList();
        var clocks = completed.Select(c => c.Clock ?? throw new Xunit.Sdk.XunitException($"{c.QueryId}: no router clock")).ToList();
        foreach (var (c, clock) in completed.Zip(clocks))
            output.WriteLine($"{c.QueryId}: queue {c.Timings.QueueMs:0} ms, dispatched {clock.DispatchedMs:0}, started {clock.StartedMs:0}, finished {clock.FinishedMs:0} ms, {c.GeneratedTokens} tokens");

        // Every query computed while at least one other did: [started, finished] lies inside its computing time.
        for (int i = 0; i < clocks.Count; i++)
        {
            var overlapping = clocks.Where((o, j) => j != i && o.StartedMs < clocks[i].FinishedMs && clocks[i].StartedMs < o.FinishedMs).Count();
            Assert.True(overlapping > 0, $"{completed[i].QueryId} ran alone: {string.Join("; ", clocks)}");
        }
        var most = clocks.Max(c => clocks.Count(o => o.StartedMs <= c.StartedMs && c.StartedMs < o.FinishedMs));
        output.WriteLine($"at most {most} of 8 computing at once");
        Assert.True(most >= 2, $"never two at once: {string.Join("; ", clocks)}");

        // The same queries, one at a time: the same ids (each attends only its own KV).
        for (int i = 0; i < queries.Count; i++)
        {
            var alone = await AskAsync(client, queries[i] with { QueryId = $"alone-{i}" }, ct);
            Assert.True(alone is QueryCompleted, $"alone-{i}: {alone}\n{cluster.Outputs()}");
            Assert.Equal(((QueryCompleted)alone).TokenIds, completed[i].TokenIds);
            Assert.Equal(6, completed[i].TokenIds!.Count);
        }
        Assert.True(cluster.AllRunning, cluster.Outputs());
    }

    [Fact]
    public async Task Kv_admission_refuses_a_query_too_large_for_the_cluster_and_queues_two_that_fit_only_alone()
    {
        var ct = TestContext.Current.CancellationToken;
        var output = TestContext.Current.TestOutputHelper!;
        // random:tiny on CPU: 4 layers x 2 kv heads x 16 x 2 (K, V) x 4 bytes = 1 KiB of KV per token.
        using var cluster = await LoopbackCluster.StartAsync(hostNodes: 2,
            hostEnv: new Dictionary<string, string> { ["APB_KV_MEMORY"] = "2MiB", ["APB_TEST_LAYER_DELAY_MS"] = "250" }, ct: ct);
        await using var client = cluster.Connect(idleTimeout: Bound);

        // 8000 document tokens on 2 hosts: at least 4000 KiB on one of them, beyond its 2 MiB.
        var refused = await client.AskAsync(Query("too-large", documentTokens: 8000, seed: 1, maxNew: 4), ct).ToListAsync(ct);
        var failed = Assert.IsType<QueryFailed>(Assert.Single(refused)); // at once: no plan accepted, nothing ran
        output.WriteLine(failed.Reason);
        Assert.Matches(@"needs \d+\.\d MiB of KV on host \S+, which can hold at most 2\.0 MiB", failed.Reason);

        // 2400 tokens: alone at most ~1.5 MiB on a host (fits 2 MiB); two at once need at least 2 x 1.2 MiB on host 0.
        var pair = await Task.WhenAll(
            AskAsync(client, Query("fits-alone-a", documentTokens: 2400, seed: 2, maxNew: 4), ct),
            AskAsync(client, Query("fits-alone-b", documentTokens: 2400, seed: 3, maxNew: 4), ct));
        Assert.All(pair, p => Assert.True(p is QueryCompleted, $"{p}\n{cluster.Outputs()}"));
        var (first, second) = ((QueryCompleted)pair[0], (QueryCompleted)pair[1]);
        if (second.Clock!.DispatchedMs < first.Clock!.DispatchedMs) (first, second) = (second, first);
        output.WriteLine($"{first.QueryId}: {first.Clock}; {second.QueryId}: {second.Clock} (queue {second.Timings.QueueMs:0} ms)");
        Assert.True(second.Clock!.DispatchedMs >= first.Clock!.FinishedMs,
            $"the second query was dispatched at {second.Clock.DispatchedMs:0} ms, before the first finished at {first.Clock.FinishedMs:0} ms");
        Assert.True(second.Timings.QueueMs > 0);

        // The budget is reported as each host's memory, and nothing is held once both ended.
        var status = await client.StatusAsync(TimeSpan.FromSeconds(10));
        Assert.All(status.Hosts, h => Assert.Equal(2L << 20, h.MemoryTotalBytes));
        Assert.True(cluster.AllRunning, cluster.Outputs());
    }

    [Fact]
    public async Task Kv_admission_admits_a_shadowkv_query_too_large_for_full_kv_and_refuses_one_whose_values_exceed_host_memory()
    {
        var ct = TestContext.Current.CancellationToken;
        var output = TestContext.Current.TestOutputHelper!;
        using var cluster = await LoopbackCluster.StartAsync(hostNodes: 2,
            hostEnv: new Dictionary<string, string> { ["APB_KV_MEMORY"] = "2MiB", ["APB_HOST_KV_MEMORY"] = "3MiB" }, ct: ct);
        await using var client = cluster.Connect(idleTimeout: Bound);
        // Rank 4 of tiny's 32, 8 chunks a step, values in host memory: per document token about 300 B on the device and
        // 512 B of values in host memory, against 1 KiB of full KV (CPU fp32).
        var shadowKv = new KvStoreOptions(KvStoreKind.ShadowKv, Rank: 4, Chunk: 8, Budget: 64, Outliers: 4, Local: 4, ValuesOnHost: true);

        // 8000 document tokens, 4000 per host: 3.9 MiB of full KV on each, beyond its 2 MiB.
        var full = Assert.IsType<QueryFailed>(Assert.Single(await client.AskAsync(Query("full", 8000, seed: 1, maxNew: 4) with { Split = BlockSplitMode.Equal }, ct).ToListAsync(ct)));
        output.WriteLine(full.Reason);
        Assert.Matches(@"needs 3\.9 MiB of KV on host \S+, which can hold at most 2\.0 MiB", full.Reason);

        // The same query from ShadowKV stores: about 1.2 MiB on each device and 1.9 MiB of values in each host's 3 MiB.
        var shadow = await AskAsync(client, Query("shadow", 8000, seed: 1, maxNew: 4) with { Split = BlockSplitMode.Equal, KvStore = shadowKv }, ct);
        Assert.True(shadow is QueryCompleted, $"{shadow}\n{cluster.Outputs()}");
        Assert.Equal(4, ((QueryCompleted)shadow).TokenIds!.Count);

        // 16000 tokens: about 1.9 MiB on each device still fits, but 3.9 MiB of values per host do not.
        var values = Assert.IsType<QueryFailed>(Assert.Single(
            await client.AskAsync(Query("values", 16000, seed: 2, maxNew: 4) with { Split = BlockSplitMode.Equal, KvStore = shadowKv }, ct).ToListAsync(ct)));
        output.WriteLine(values.Reason);
        Assert.Matches(@"^the query needs 3\.9 MiB of host memory for its ShadowKV values on host \S+, which can hold at most 3\.0 MiB", values.Reason);

        // Each host reports its host KV budget, and holds nothing once the query ended (reports come every 2 s).
        var status = await client.StatusAsync(TimeSpan.FromSeconds(10));
        for (var until = DateTime.UtcNow.AddSeconds(30); status.Hosts.Any(h => h.KvBytes + h.HostKvBytes > 0) && DateTime.UtcNow < until;)
        {
            await Task.Delay(500, ct);
            status = await client.StatusAsync(TimeSpan.FromSeconds(10));
        }
        Assert.All(status.Hosts, h => Assert.Equal((3L << 20, 0L, 0L), (h.HostMemoryTotalBytes, h.HostKvBytes, h.KvBytes)));
        Assert.True(cluster.AllRunning, cluster.Outputs());
    }

    [Fact]
    public async Task Apb_load_reports_overlap_and_checks_every_answer_against_the_query_run_alone()
    {
        var ct = TestContext.Current.CancellationToken;
        using var cluster = await LoopbackCluster.StartAsync(hostNodes: 2,
            hostEnv: new Dictionary<string, string> { ["APB_TEST_LAYER_DELAY_MS"] = "100" }, ct: ct);
        var report = Path.GetTempFileName();
        try
        {
            var (code, stdout, stderr) = await CliAskClusterTests.RunApbAsync(ct, "load", "--cluster", cluster.RouterContact, "--queries", "4",
                "--concurrency", "4", "--context-tokens", "256", "--max-new-tokens", "4", "--out", report);
            Assert.True(code == 0, $"exit {code}\n{stdout}\n{stderr}\n{cluster.Outputs()}");
            Assert.Contains("answers equal to each query alone: 4/4", stdout);
            using var doc = JsonDocument.Parse(await File.ReadAllTextAsync(report, ct));
            var root = doc.RootElement;
            Assert.Equal(4, root.GetProperty("completed").GetInt32());
            Assert.Equal(0, root.GetProperty("mismatches").GetInt32());
            Assert.True(root.GetProperty("most_running_at_once").GetInt32() >= 2, stdout);
            Assert.True(root.GetProperty("tokens_per_s").GetDouble() > 0);
            Assert.True(root.GetProperty("ttft_p95_ms").GetDouble() >= root.GetProperty("ttft_p50_ms").GetDouble());
            foreach (var q in root.GetProperty("per_query").EnumerateArray())
            {
                Assert.True(q.GetProperty("same_as_alone").GetBoolean());
                Assert.True(q.GetProperty("finished_ms").GetDouble() > q.GetProperty("started_ms").GetDouble());
                Assert.Equal(4, q.GetProperty("token_ids").GetArrayLength());
            }

            // A bad option is named, and nothing is sent.
            var bad = await CliAskClusterTests.RunApbAsync(ct, "load", "--cluster", cluster.RouterContact, "--concurrency", "0");
            Assert.Equal(2, bad.Code);
            Assert.Contains("--concurrency 0", bad.Stderr);
        }
        finally { File.Delete(report); }
    }

    private static SubmitQuery Query(string id, int documentTokens, int seed, int maxNew)
    {
        var rng = new Random(seed);
        var ids = Enumerable.Range(0, documentTokens).Select(_ => 3 + rng.Next(256)).ToArray();
        return new SubmitQuery(id, QueryContext.FromTokens(ids), " What comes next?", GenerationOptions.Greedy(maxNew), AttentionMode.Apb, null);
    }

    private static async Task<object> AskAsync(ClusterQueryClient client, SubmitQuery query, CancellationToken ct)
    {
        using var bound = CancellationTokenSource.CreateLinkedTokenSource(ct);
        bound.CancelAfter(Bound);
        var (terminal, _) = await client.AskToEndAsync(query, bound.Token);
        return terminal;
    }
}
