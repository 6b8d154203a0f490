using ApbCluster.Model.Layers;
using ApbCluster.NativeInterop;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace ApbCluster.Model.Tests.Layers;

public class KvCacheTests
{
    public KvCacheTests() => TorchRuntime.EnsureLoaded("cpu");

    [Fact]
    public void AppendWritesInPlaceAndViewsTheFilledPart()
    {
        var c = TinyModels.Llama;
        using var cache = new KvCache(c, 1, 8, CPU, ScalarType.Float32);
        Assert.Equal(2L * 2 * 8 * 2 * 16 * 4, cache.Bytes);
        var k = randn(1, 3, 2, 16);
        var v = randn(1, 3, 2, 16);
        cache.Append(0, k, v);
        Assert.Equal(0, cache.Length); // layer 1 still empty
        cache.Append(1, k, v);
        Assert.Equal(3, cache.Length);
        Assert.True(cache.Keys(0).eq(k).all().item<bool>());
        Assert.True(cache.Values(1).eq(v).all().item<bool>());
        cache.Truncate(1);
        Assert.Equal(1, cache.Length);
        Assert.True(cache.Keys(0).eq(k.narrow(1, 0, 1)).all().item<bool>());
        cache.Reset();
        Assert.Equal(0, cache.Length);
    }

    [Fact]
    public void ExceedingCapacityIsAClearError()
    {
        var c = TinyModels.Qwen2;
        using var model = TinyModels.Build(c, TinyModels.RandomWeights(c, seed: 1));
        using var cache = model.CreateCache(1, 4);
        model.Forward(tensor(new long[] { 1, 2, 3 }).unsqueeze(0), cache);
        var e = Assert.Throws<InvalidOperationException>(() => model.Forward(tensor(new long[] { 4, 5 }).unsqueeze(0), cache));
        Assert.Contains("capacity", e.Message);
        Assert.Contains("4", e.Message);
    }

    [Fact]
    public void RepeatedForwardsLeakNoTensors()
    {
        var c = TinyModels.Llama;
        using var model = TinyModels.Build(c, TinyModels.RandomWeights(c, seed: 2));
        using var cache = model.CreateCache(1, 64);
        var ids = tensor(new long[] { 5, 6, 7, 8 }).unsqueeze(0);
        void Run()
        {
            cache.Reset();
            using var scope = NewDisposeScope();
            model.Forward(ids, cache);
            for (int i = 0; i < 5; i++) model.Forward(ids.narrow(1, 0, 1), cache);
        }
        Run(); // warm-up: lazily created state
        // Thread-local live count: other tests run in parallel on other threads.
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        for (int i = 0; i < 10; i++) Run();
        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
        using var probe = randn(2); // the counter does see a live tensor
        Assert.Equal(before + 1, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }
}
