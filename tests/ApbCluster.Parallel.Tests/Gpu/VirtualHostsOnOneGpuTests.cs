using ApbCluster.Model.Layers;
using ApbCluster.Parallel.Compression;
using ApbCluster.Parallel.Phase2;
using ApbCluster.Parallel.Plan;
using ApbCluster.Parallel.Strategies;
using ApbCluster.Parallel.Tests.Strategies;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace ApbCluster.Parallel.Tests.Gpu;

/// <summary>
/// <see cref="ParallelRun.InProcess"/> with a model on the GPU: H virtual hosts share it, as `apb ask`,
/// `apb eval` and `apb demo` run them on a one-GPU machine. Phase 2 all-gathers every host's partial output;
/// those must stay on the GPU (a CPU collective once copied them off it and the next layer's matmul failed
/// with "Expected all tensors to be on the same device"). Lossless APB and dense give the same greedy tokens.
/// </summary>
[Trait("Category", "Gpu")]
[Collection(GpuCollection.Name)]
public class VirtualHostsOnOneGpuTests(ITestOutputHelper output)
{
    [Fact]
    public void Virtual_hosts_sharing_one_gpu_prefill_and_decode_there()
    {
        Assert.SkipUnless(GpuAvailability.DeviceCount >= 1, GpuAvailability.SkipReason);
        var gpu = new Device(DeviceType.CUDA, 0);
        using var model = LlamaModel.CreateRandom(StrategyFixture.Config(kvHeads: 2), gpu, ScalarType.Float32, seed: 7);
        var rng = new Random(11);
        var doc = StrategyFixture.Tokens(rng, 301, 61);
        var question = StrategyFixture.Tokens(rng, 7, 61);
        const int steps = 8;
        var dense = StrategyFixture.DenseGreedy(model, doc, question, steps);

        foreach (var (name, hosts, mode, strategy, passAll) in new (string, int, ParallelMode, PrefillStrategy, bool)[]
        {
            ("dense", 1, ParallelMode.Dense, new DenseStrategy(), false),
            ("apb lossless", 3, ParallelMode.Apb, new ApbStrategy(new RandomCompressor(1)), true),
            ("apb query-aware", 3, ParallelMode.Apb, new ApbStrategy(new QueryAwareCompressor()), false),
            ("star", 3, ParallelMode.Star, new StarStrategy(), false),
        })
        {
            var plan = ApbPlan.Create(new PlanRequest
            {
                Mode = mode, Hosts = hosts, DocumentLength = doc.Length, QuestionLength = question.Length,
                NumHeads = 8, NumKvHeads = 2, AnchorLength = passAll ? 0 : null, PassAll = passAll,
            });
            var runs = ParallelRun.InProcess(model, plan, strategy, new PrefillRequest(doc, question),
                new Phase2Options { MaxNewTokens = steps, StopIds = [] }, TimeSpan.FromMinutes(2));
            try
            {
                output.WriteLine($"{name} on {hosts} virtual host(s): {string.Join(",", runs[^1].Result.Tokens)}");
                foreach (var (shard, result) in runs)
                {
                    Assert.Equal(steps, result.Tokens.Length);
                    Assert.All(shard.Keys, k => Assert.Equal(DeviceType.CUDA, k.device_type));
                }
                if (mode == ParallelMode.Dense || passAll) Assert.Equal(dense, runs[^1].Result.Tokens);
            }
            finally { foreach (var (shard, _) in runs) shard.Dispose(); }
        }
        output.WriteLine($"dense greedy (model's own cache): {string.Join(",", dense)}");
    }
}
