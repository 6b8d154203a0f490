using ApbCluster.Model.KvStores;
using Xunit;
using static TorchSharp.torch;
using static ApbCluster.Parallel.Tests.Strategies.StrategyFixture;

namespace ApbCluster.Parallel.Tests.ShadowKv;

public class ShadowKvStoreTests
{
    [Theory]
    [InlineData(ShadowKvValues.Device, 4, 200)]
    [InlineData(ShadowKvValues.Host, 4, 200)]
    [InlineData(ShadowKvValues.Device, 1, 7)]   // no whole chunk: everything is local
    [InlineData(ShadowKvValues.Host, 2, 37)]    // fewer chunks than outliers
    public void EstimateIsWhatTheBuiltStoreKeeps(ShadowKvValues placement, int kvHeads, int tokens)
    {
        using var model = TinyModel(kvHeads, 2);
        using var _ = no_grad();
        var keys = Enumerable.Range(0, 2).Select(_ => randn(1, tokens, kvHeads, 8)).ToArray();
        var values = Enumerable.Range(0, 2).Select(_ => randn(1, tokens, kvHeads, 8)).ToArray();
        var o = new ShadowKvOptions { Rank = 6, Chunk = 4, Budget = 16, Outliers = 3, Local = 2, Values = placement };
        using var store = ShadowKvStore.Build(keys, values, Enumerable.Range(0, tokens).Select(x => (long)x).ToArray(), model, o);
        for (int layer = 0; layer < 2; layer++) store.Attend(layer, randn(1, 1, 8, 8), model.Scale); // host V: the chunk caches fill
        var (device, host) = ShadowKvStore.EstimateBytes(tokens, model.Config, o);
        Assert.Equal(device, store.DeviceBytes);
        Assert.Equal(host, store.HostBytes);
        Assert.Equal(placement == ShadowKvValues.Host && store.Layout.SparseTokens > 0, host > 0);
        // With no whole chunk to factorise, every key is exact: the store attends as the full one.
        if (store.Layout.SparseChunks == 0)
        {
            var q = randn(1, 1, 8, 8);
            using var full = new FullKvStore(keys, values);
            Assert.True(store.Attend(1, q, model.Scale).Out.allclose(full.Attend(1, q, model.Scale).Out, rtol: Tol, atol: Tol));
        }
    }

    [Fact]
    public void HostValuesThroughTheChunkCacheAttendAsDeviceValuesAndReuseRepeatedChunks()
    {
        using var model = TinyModel(2, 4);
        using var _ = no_grad();
        manual_seed(4);
        var keys = Enumerable.Range(0, 2).Select(_ => randn(1, 120, 2, 8)).ToArray();
        var values = Enumerable.Range(0, 2).Select(_ => randn(1, 120, 2, 8)).ToArray();
        var positions = Enumerable.Range(0, 120).Select(x => (long)x).ToArray();
        var o = new ShadowKvOptions { Rank = 8, Chunk = 4, Budget = 24, Outliers = 2, Local = 1 };
        using var device = ShadowKvStore.Build(keys, values, positions, model, o);
        using var host = ShadowKvStore.Build(keys, values, positions, model, o with { Values = ShadowKvValues.Host });
        var q1 = randn(1, 1, 8, 8);
        var q2 = randn(1, 1, 8, 8);
        long perStep = 2 * 2 * 6; // layers x KV heads x selected chunks
        foreach (var (q, step) in new[] { (q1, 1), (q1, 2), (q2, 3), (q1, 4) })
        {
            for (int layer = 0; layer < 2; layer++)
            {
                using var scope = NewDisposeScope(); // as Phase 2's step: the cache must outlive it
                var (a, al) = device.Attend(layer, q, model.Scale);
                var (b, bl) = host.Attend(layer, q, model.Scale);
                Assert.True(a.allclose(b, rtol: 1e-6, atol: 1e-6) && al.allclose(bl, rtol: 1e-6, atol: 1e-6), $"step {step}, layer {layer}");
            }
            var (hits, fetched) = host.ChunkReuse;
            Assert.Equal(step * perStep, hits + fetched);
            if (step == 1) Assert.Equal(0, hits);          // nothing cached yet
            if (step == 2) Assert.Equal(perStep, hits);    // the same query chooses the same chunks
        }
        Assert.True(host.ChunkReuse.Fetched < 4 * perStep);
        Assert.Equal((0L, 0L), device.ChunkReuse);
    }

    [Fact]
    public void AtLongContextTheStoreIsAFractionOfTheFullKv()
    {
        // Llama-3.1-8B's shape at 128K, defaults: U + SV + landmarks + exact chunks on the device, V on the host.
        var config = ApbCluster.Model.Config.ModelShapes.Get("llama-3.1-8b");
        long tokens = 131072;
        long full = 2L * tokens * config.NumKvHeads * config.HeadDim * 2 * config.NumLayers;
        var (device, host) = ShadowKvStore.EstimateBytes(tokens, config, new ShadowKvOptions { Values = ShadowKvValues.Host });
        Assert.InRange(device, full / 10, full / 4); // the spec's estimate: about 2-3 GiB of 16 GiB
        Assert.Equal(full / 2, host, full / 100);    // all of V, less the exact local tail's share
    }

    [Fact]
    public void FreeingTheInputsLeavesTheShardSafeToDisposeInsideAScope()
    {
        using var model = TinyModel(2, 3);
        using var _ = no_grad();
        ShadowKvStore store;
        Tensor[] keys;
        using (var scope = NewDisposeScope()) // like the engine's: the shard's tensors belong to it
        {
            keys = Enumerable.Range(0, 2).Select(_ => randn(1, 50, 2, 8)).ToArray();
            var values = Enumerable.Range(0, 2).Select(_ => randn(1, 50, 2, 8)).ToArray();
            store = ShadowKvStore.Build(keys, values, Enumerable.Range(10, 50).Select(x => (long)x).ToArray(), model,
                new ShadowKvOptions { Rank = 16, Chunk = 4, Budget = 64, Outliers = 2, Local = 1 }, disposeInputs: true);
            Assert.All(keys.Concat(values), t => Assert.True(t.IsInvalid));
            foreach (var t in keys.Concat(values)) t.Dispose(); // HostShard.Dispose after the store freed them
        } // and the scope disposes them once more
        using (store)
        {
            var (o, lse) = store.Attend(0, randn(1, 2, 8, 8), model.Scale); // the store's own tensors outlived the scope
            Assert.Equal(new long[] { 1, 2, 8, 8 }, o.shape);
            Assert.False(lse.isnan().any().item<bool>());
        }
    }

    public static TheoryData<string, ShadowKvOptions> BadOptions => new()
    {
        { "--shadow-rank", new ShadowKvOptions { Rank = 0 } },
        { "--shadow-chunk", new ShadowKvOptions { Chunk = -8 } },
        { "--shadow-budget", new ShadowKvOptions { Budget = 0 } },
        { "--shadow-budget", new ShadowKvOptions { Budget = 100 } }, // not a multiple of the chunk
        { "--shadow-outliers", new ShadowKvOptions { Outliers = -1 } },
        { "--shadow-local", new ShadowKvOptions { Local = -2 } },
    };

    [Theory, MemberData(nameof(BadOptions))]
    public void ABadParameterIsOneErrorNamingTheOption(string option, ShadowKvOptions o)
    {
        var e = Assert.Throws<ShadowKvOptionsException>(() => o.Validate());
        Assert.Equal(option, e.Option);
        Assert.StartsWith(option + " ", e.Message);
        var hocon = Assert.Throws<ShadowKvOptionsException>(() => o.Validate("apb.router.shadow-"));
        Assert.StartsWith("apb.router.shadow-", hocon.Option);
        var http = Assert.Throws<ShadowKvOptionsException>(() => o.Validate("shadow_"));
        Assert.StartsWith("shadow_", http.Option);
    }

    [Fact]
    public void DefaultsAreTheReferences()
    {
        var o = new ShadowKvOptions().Validate();
        Assert.Equal((160, 8, 2048, 48, 4, 256), (o.Rank, o.Chunk, o.Budget, o.Outliers, o.Local, o.BudgetChunks));
    }
}
