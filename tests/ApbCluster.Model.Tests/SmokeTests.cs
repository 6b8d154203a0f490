using ApbCluster.NativeInterop;
using TorchSharp;
using Xunit;

namespace ApbCluster.Model.Tests;

public class SmokeTests
{
    [Fact]
    public void TorchLoadsAndMultiplies()
    {
        TorchRuntime.EnsureLoaded("cpu");
        var a = torch.ones(2, 3);
        var b = torch.ones(3, 4);
        Assert.Equal(3f, a.matmul(b)[0, 0].item<float>());
    }
}
