using ApbCluster.Model.Loading;
using ApbCluster.Model.Tests.Support;
using ApbCluster.NativeInterop;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace ApbCluster.Model.Tests.Loading;

public class SafeTensorsTests
{
    public SafeTensorsTests() => TorchRuntime.EnsureLoaded("cpu");

    [Theory]
    [InlineData(ScalarType.BFloat16, "BF16")]
    [InlineData(ScalarType.Float16, "F16")]
    [InlineData(ScalarType.Float32, "F32")]
    public void RoundTripsThroughWriterAndReader(ScalarType dtype, string stName)
    {
        using var tmp = new TempDir();
        var path = tmp.File("t.safetensors");
        using var a = torch.randn([3, 5, 7]).to(dtype);
        using var b = torch.arange(0, 10, dtype: ScalarType.Float32).to(dtype);
        using var empty = torch.empty([0, 4], dtype);
        SafeTensorsWriter.Write(path, new Dictionary<string, Tensor> { ["a"] = a, ["b.weight"] = b, ["empty"] = empty },
            new Dictionary<string, string> { ["format"] = "pt" });

        using var f = SafeTensorsFile.Open(path);
        Assert.Equal(["a", "b.weight", "empty"], f.Names.Order());
        Assert.Equal("pt", f.Metadata["format"]);
        Assert.Equal(stName, f.Info("a").DType);
        Assert.Equal([3L, 5, 7], f.Info("a").Shape);
        using var a2 = f.Load("a");
        using var b2 = f.Load("b.weight");
        using var e2 = f.Load("empty");
        Assert.Equal(dtype, a2.dtype);
        Assert.True(a.eq(a2).all().item<bool>());
        Assert.True(b.eq(b2).all().item<bool>());
        Assert.Equal([0L, 4], e2.shape);
        using var asF32 = f.Load("b.weight", ScalarType.Float32);
        Assert.Equal(9f, asF32[9].item<float>());
    }

    [Fact]
    public void ChunkedCopyHandlesManyChunksAndPartialLastChunk()
    {
        // The path big (over 2 GB) tensors take, with a chunk size that forces 1000+ chunks.
        using var tmp = new TempDir();
        var path = tmp.File("big.safetensors");
        using var t = torch.randn([1001, 7]);
        SafeTensorsWriter.Write(path, new Dictionary<string, Tensor> { ["t"] = t }, null, chunkBytes: 24);
        using var f = SafeTensorsFile.Open(path);
        using var back = f.Load("t", null, null, chunkBytes: 24);
        Assert.True(t.eq(back).all().item<bool>());
        using var back2 = f.Load("t", null, null, chunkBytes: 1); // below one element: one element per chunk
        Assert.True(t.eq(back2).all().item<bool>());
    }

    [Fact]
    public void WriterAcceptsNonContiguousTensors()
    {
        using var tmp = new TempDir();
        var path = tmp.File("t.safetensors");
        using var m = torch.randn([4, 6]);
        using var mt = m.t();
        SafeTensorsWriter.Write(path, new Dictionary<string, Tensor> { ["mt"] = mt });
        using var f = SafeTensorsFile.Open(path);
        using var back = f.Load("mt");
        Assert.True(mt.eq(back).all().item<bool>());
    }

    [Fact]
    public void ShardedWriterWritesIndexAndSplitsBySize()
    {
        using var tmp = new TempDir();
        var tensors = Enumerable.Range(0, 5).ToDictionary(i => $"w{i}", _ => torch.ones([256], ScalarType.Float32)); // 1 KiB each
        var paths = SafeTensorsWriter.WriteSharded(tmp.Path, tensors, maxShardBytes: 2048);
        Assert.Equal(3, paths.Count);
        Assert.EndsWith("model-00001-of-00003.safetensors", paths[0]);
        using var w = CheckpointWeights.Open(tmp.Path);
        Assert.Equal(5, w.Names.Count);
        Assert.EndsWith("model-00003-of-00003.safetensors", w.FileOf("w4").Path);
        foreach (var t in tensors.Values) t.Dispose();
    }
}
