using ApbCluster.Contracts;
using ApbCluster.Model.Layers;
using ApbCluster.Parallel.Compression;
using ApbCluster.Parallel.Phase2;
using ApbCluster.Parallel.Serving;
using ApbCluster.Parallel.Strategies;
using ApbCluster.Engine;
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

    /// <summary>The router's plan for <paramref name="prompt"/> on <paramref name="hosts"/> hosts (served defaults).</summary>
    public static Parallel.Plan.ApbPlan Plan(AttentionMode mode, int hosts, PromptLayout prompt) =>
        QueryPlanning.Plan(mode, hosts, prompt.Document.Length, prompt.Question.Length, prompt.TemplateOffset, null, null,
            Parallel.Plan.BlockSplit.Balanced, Tiny.Value.Config);

    public static long[] Tokens(AttentionMode mode, int hosts, PromptLayout prompt, int maxNew, Parallel.Kernels.CritiPrefillOptions? critiPrefill = null)
    {
        var model = Tiny.Value;
        var plan = Plan(mode, hosts, prompt);
        var strategy = ParallelRun.For(plan.Mode, plan.Mode == Parallel.Plan.ParallelMode.Apb && plan.PassingLength > 0 ? new QueryAwareCompressor() : null);
        var request = new PrefillRequest(prompt.Document, prompt.Question) { CritiPrefill = critiPrefill };
        lock (model)
        {
            var results = ParallelRun.InProcess(model, plan, strategy, request, new Phase2Options { MaxNewTokens = maxNew });
            foreach (var (shard, _) in results) shard.Dispose();
            return results[^1].Result.Tokens;
        }
    }

    /// <summary>The prompt as the router builds it.</summary>
    public static PromptLayout Prompt(string context, string question) => ITokenCodec.For(ModelSpec.Parse(Model, null)!).Layout(context, question);

    /// <summary>A context long enough to split over 3 hosts with anchor and passing.</summary>
    public static string Context(int sentences) =>
        string.Join(" ", Enumerable.Range(0, sentences).Select(i => $"Fact {i}: the {(i % 2 == 0 ? "red" : "blue")} box holds {i * 7 % 13} marbles."));
}
