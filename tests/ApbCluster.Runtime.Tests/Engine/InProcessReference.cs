using ApbCluster.Contracts;
using ApbCluster.Model.Layers;
using ApbCluster.Parallel.Compression;
using ApbCluster.Parallel.Phase2;
using ApbCluster.Parallel.Strategies;
using ApbCluster.Runtime.Engine;
using static TorchSharp.torch;

namespace ApbCluster.Runtime.Tests.Engine;

/// <summary>
/// The answer a query must get: the same strategy run on H virtual hosts in this process
/// (InProcessCollectiveGroup via ParallelRun.InProcess), with the same model spec and plan.
/// </summary>
public static class InProcessReference
{
    public const string Model = "random:tiny:7";

    private static readonly Lazy<LlamaModel> Tiny = new(() => ModelSpec.Parse(Model, null)!.Load(CPU));

    public static long[] Tokens(AttentionMode mode, int hosts, IReadOnlyList<int> document, IReadOnlyList<int> question, int maxNew)
    {
        var model = Tiny.Value;
        var plan = QueryPlanning.Plan(mode, hosts, document.Count, question.Count, null, null, model.Config);
        var strategy = ParallelRun.For(plan.Mode, plan.Mode == Parallel.Plan.ParallelMode.Apb && plan.PassingLength > 0 ? new QueryAwareCompressor() : null);
        var request = new PrefillRequest(document.Select(x => (long)x).ToArray(), question.Select(x => (long)x).ToArray());
        lock (model)
        {
            var results = ParallelRun.InProcess(model, plan, strategy, request, new Phase2Options { MaxNewTokens = maxNew });
            foreach (var (shard, _) in results) shard.Dispose();
            return results[^1].Result.Tokens;
        }
    }

    public static (int[] Document, int[] Question) Prompt(string context, string question)
    {
        var codec = ITokenCodec.For(ModelSpec.Parse(Model, null)!);
        return (codec.Encode(context, addBos: true).ToArray(), codec.Encode(question, addBos: false).ToArray());
    }

    /// <summary>A context long enough to split over 3 hosts with anchor and passing.</summary>
    public static string Context(int sentences) =>
        string.Join(" ", Enumerable.Range(0, sentences).Select(i => $"Fact {i}: the {(i % 2 == 0 ? "red" : "blue")} box holds {i * 7 % 13} marbles."));
}
