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
        // The engine does reach libtorch (through Parallel): the walk the front door's test relies on finds it.
        Assert.Contains(Closure(typeof(LlamaShardEngine).Assembly), r => r.StartsWith("TorchSharp", StringComparison.Ordinal));
        Assert.DoesNotContain(refs, r => r.StartsWith("Akka", StringComparison.Ordinal));
        Assert.DoesNotContain(refs, r => r is "ApbCluster.Runtime" or "ApbCluster.Http" or "ApbCluster.Node" or "ApbCluster.Client");
    }

    [Fact]
    public void The_http_front_door_depends_on_the_contracts_alone_and_never_on_libtorch()
    {
        var refs = References(typeof(HttpFrontDoor).Assembly);
        Assert.Equal(["ApbCluster.Contracts"], refs.Where(r => r.StartsWith("ApbCluster.", StringComparison.Ordinal)));
        // Through the contracts either: nothing the front door loads pulls libtorch in.
        Assert.DoesNotContain(Closure(typeof(HttpFrontDoor).Assembly), r => r.StartsWith("TorchSharp", StringComparison.OrdinalIgnoreCase));
    }

    /// <summary>Every assembly name reachable through ApbCluster.* references (the project's own, loaded to read theirs).</summary>
    private static HashSet<string> Closure(Assembly root)
    {
        var seen = new HashSet<string>();
        var pending = new Stack<Assembly>([root]);
        while (pending.TryPop(out var a))
            foreach (var r in a.GetReferencedAssemblies())
                if (seen.Add(r.Name!) && r.Name!.StartsWith("ApbCluster.", StringComparison.Ordinal)) pending.Push(Assembly.Load(r));
        return seen;
    }
}
