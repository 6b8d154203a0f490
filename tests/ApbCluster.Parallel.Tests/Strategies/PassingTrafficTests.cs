using ApbCluster.Parallel.Collectives;
using ApbCluster.Parallel.Compression;
using ApbCluster.Parallel.Plan;
using ApbCluster.Parallel.Strategies;
using Xunit;
using static ApbCluster.Parallel.Tests.Strategies.StrategyFixture;

namespace ApbCluster.Parallel.Tests.Strategies;

/// <summary>Passing moves exactly the bytes the plan says: per layer, every host contributes its
/// compressed block [l_p, n_kv, 2 * head_dim] to one all-gather (so sends it to each of the H-1 others),
/// and nothing else is passed.</summary>
public class PassingTrafficTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(2, 2)]
    [InlineData(4, 1)]
    public void Passing_bytes_match_the_plan(int hosts, int kvHeads)
    {
        using var model = TinyModel(kvHeads, 9);
        var rng = new Random(9);
        var doc = Tokens(rng, 96, 61);
        var question = Tokens(rng, 3, 61);
        var plan = ApbPlan.Create(new PlanRequest { DocumentLength = 96, QuestionLength = 3, Hosts = hosts, TemplateOffset = 2, PassingLength = 5 });
        var traffic = new CollectiveTraffic();
        var ranks = InProcessCollectiveGroup.Create(hosts, TimeSpan.FromMinutes(1)).Select(r => r.WithTraffic(traffic)).ToArray();
        try
        {
            var shards = CollectiveRunner.Run(ranks, c => new ApbStrategy(new RandomCompressor(1)).Prefill(c, model, plan, new PrefillRequest(doc, question)));
            foreach (var s in shards) s.Dispose();
        }
        finally { CollectiveRunner.DisposeAll(ranks); }

        var config = model.Config;
        long perHostPerLayer = (long)plan.PassingLength * config.NumKvHeads * 2 * config.HeadDim * sizeof(float);
        var passing = traffic.Snapshot().Where(e => e.What.Contains("passing block")).ToList();
        long sent = passing.Sum(e => e.BytesSent);
        output.WriteLine($"H={hosts}: {sent} bytes passed in {passing.Sum(e => e.Calls)} calls; plan: {perHostPerLayer} bytes per host per layer to each of {hosts - 1} peers");
        Assert.Equal(perHostPerLayer * (hosts - 1) * config.NumLayers * hosts, sent);
        Assert.Equal(config.NumLayers * hosts, passing.Sum(e => e.Calls));
        Assert.Equal(passing.Sum(e => e.BytesSent), traffic.TotalSent); // prefill passes nothing else
    }
}
