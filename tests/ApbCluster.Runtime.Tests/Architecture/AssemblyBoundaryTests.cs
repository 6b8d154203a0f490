using System.Reflection;
using ApbCluster.Engine;
using ApbCluster.Http;

namespace ApbCluster.Runtime.Tests.Architecture;

/// <summary>
/// The assemblies' boundaries, read from the compiled references (what the IL really uses), so a stray `using` that
/// drags actors into the engine fails here rather than in review.
/// </summary>
public sealed class AssemblyBoundaryTests
{
    private static string[] References(Assembly assembly) => assembly.GetReferencedAssemblies().Select(a => a.Name!).Order().ToArray();

    [Fact]
    public void The_engine_runs_without_actors()
    {
        var refs = References(typeof(LlamaShardEngine).Assembly);
        Assert.Contains("ApbCluster.Parallel", refs); // it is read at all
        Assert.DoesNotContain(refs, r => r.StartsWith("Akka", StringComparison.Ordinal));
        Assert.DoesNotContain(refs, r => r is "ApbCluster.Runtime" or "ApbCluster.Http" or "ApbCluster.Node" or "ApbCluster.Client");
    }

    [Fact]
    public void The_http_front_door_depends_on_the_contracts_alone_and_never_on_libtorch()
    {
        var refs = References(typeof(HttpFrontDoor).Assembly);
        Assert.Equal(["ApbCluster.Contracts"], refs.Where(r => r.StartsWith("ApbCluster.", StringComparison.Ordinal)));
        Assert.DoesNotContain(refs, r => r.StartsWith("TorchSharp", StringComparison.OrdinalIgnoreCase));
    }
}
