using System.Text.Json;

namespace ApbCluster.Runtime.Tests.Cluster;

/// <summary>
/// `apb load --stall` against a real loopback cluster (a router and 2 gpu-host node processes, random:tiny:7) whose hosts
/// run the decode-first prefill policy: the report has each part of the measurement, from times the client took per
/// token. No figure is held to a threshold (that is the benchmark's business, docs/benchmarks/prefill-stall).
/// </summary>
[Collection(LoopbackClusterCollection.Name)]
public sealed class PrefillStallClusterTests
{
    [Fact]
    public async Task Apb_load_stall_measures_the_running_querys_gaps_before_and_during_a_new_prefill()
    {
        var ct = TestContext.Current.CancellationToken;
        const int Decode = 96, ArriveAfter = 8;
        using var cluster = await LoopbackCluster.StartAsync(hostNodes: 2,
            hostEnv: new Dictionary<string, string> { ["APB_PREFILL_POLICY"] = "decode-first" }, ct: ct);
        Assert.Contains("prefill policy decode-first", cluster.Outputs(chars: 1_000_000));
        var report = Path.GetTempFileName();
        try
        {
            var (code, stdout, stderr) = await CliAskClusterTests.RunApbAsync(ct, "load", "--stall", "--cluster", cluster.RouterContact,
                "--context-tokens", "2048", "--decode-tokens", $"{Decode}", "--arrive-after", $"{ArriveAfter}", "--max-new-tokens", "2",
                "--repeat", "1", "--out", report);
            Assert.True(code == 0, $"exit {code}\n{stdout}\n{stderr}\n{cluster.Outputs()}");
            Assert.Contains("before_p50_ms  during_max_ms  during_p95_ms", stdout);
            Assert.Matches(@"all trials: gap before p50 \d+\.\d ms; during the prefill max \d+\.\d ms, p95 \d+\.\d ms \(\d+ gaps\)", stdout);

            using var doc = JsonDocument.Parse(await File.ReadAllTextAsync(report, ct));
            var root = doc.RootElement;
            Assert.Equal("stall", root.GetProperty("mode").GetString());
            var trial = Assert.Single(root.GetProperty("trials").EnumerateArray().ToList());
            Assert.Equal(JsonValueKind.Null, trial.GetProperty("error").ValueKind);
            var tokens = trial.GetProperty("token_ms").EnumerateArray().Select(t => t.GetDouble()).ToList();
            Assert.True(tokens.Count > ArriveAfter, $"{tokens.Count} tokens"); // an end-of-sequence id may end it before Decode
            Assert.True(tokens.Count <= Decode);
            double arrival = trial.GetProperty("arrival_ms").GetDouble(), firstToken = trial.GetProperty("arriving_first_token_ms").GetDouble();
            Assert.True(tokens[ArriveAfter - 1] <= arrival && arrival < firstToken && firstToken < tokens[^1],
                $"arrival {arrival}, first token {firstToken}, tokens {string.Join(", ", tokens)}");

            // Every gap between consecutive tokens is filed once: before, during or after the other's prefill.
            double[] Gaps(string name) => trial.GetProperty(name).EnumerateArray().Select(g => g.GetDouble()).ToArray();
            var (before, during, after) = (Gaps("before_gaps_ms"), Gaps("during_gaps_ms"), Gaps("after_gaps_ms"));
            Assert.Equal(tokens.Count - 1, before.Length + during.Length + after.Length);
            Assert.Equal(ArriveAfter - 1, before.Length);
            Assert.NotEmpty(during);
            Assert.Equal(tokens[^1] - tokens[0], before.Sum() + during.Sum() + after.Sum(), 3);
            Assert.All(before.Concat(during).Concat(after), g => Assert.True(g >= 0));
            Assert.Equal(during.Max(), trial.GetProperty("during_max_ms").GetDouble());
            Assert.True(trial.GetProperty("during_p95_ms").GetDouble() <= trial.GetProperty("during_max_ms").GetDouble());
            Assert.True(trial.GetProperty("arriving_ttft_ms").GetDouble() > 0);
            Assert.True(trial.GetProperty("arriving_router_clock").GetProperty("started_ms").GetDouble()
                        < trial.GetProperty("running_router_clock").GetProperty("finished_ms").GetDouble(), "the two queries did not overlap on the router's clock");
            Assert.Equal(during.Length, root.GetProperty("during_gaps").GetInt32());
        }
        finally { File.Delete(report); }
        Assert.True(cluster.AllRunning, cluster.Outputs());
    }
}
