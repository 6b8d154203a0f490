using System.Diagnostics;
using ApbCluster.Model.Generation;
using ApbCluster.Model.KvStores;
using ApbCluster.Model.Layers;
using ApbCluster.Parallel.Collectives;
using ApbCluster.Parallel.Kernels;
using ApbCluster.Parallel.Phase2;
using ApbCluster.Parallel.Plan;
using ApbCluster.Parallel.Serving;
using ApbCluster.Parallel.Strategies;

namespace ApbCluster.Cli.Commands;

/// <summary>
/// `apb generate --kv shadowkv`: decoding from a ShadowKV store on one device, the path `ask --mode dense --kv shadowkv`
/// and the cluster's hosts take (Phase 2 on one rank). The prompt but its last token is prefilled and converted into the
/// store; the last token is Phase 2's question, whose step gives the first logits, so the tokens are the ones
/// <see cref="Generator"/> would pick from the same logits. Streams, stops and reports as the generator does.
/// </summary>
internal static class ShadowKvGenerate
{
    /// <summary>A stop string appeared: ends the decode loop from its token callback.</summary>
    private sealed class StopStringSeen : Exception;

    public static (GenerationResult Result, ShadowKvStore? Store, long DeviceBytes, long HostBytes) Run(LlamaModel model, IReadOnlyList<int> promptIds,
        GenerationOptions options, ShadowKvOptions shadowKv, CritiPrefillOptions? criti, Func<IReadOnlyList<int>, string> decode,
        Action<GeneratedToken>? onToken)
    {
        if (promptIds.Count < 2)
            throw new CliUsageException($"--kv shadowkv: the prompt has {promptIds.Count} token; the store needs at least one before the last.");
        if (PositionBudget.Check(promptIds.Count - 1, 1, options.MaxNewTokens, model.Config.MaxPositionEmbeddings) is { } tooLong)
            throw new CliUsageException($"{tooLong}: shorten the prompt or lower --max-new-tokens.");
        var generated = new List<int>();
        if (options.MaxNewTokens <= 0) return (new GenerationResult(promptIds.ToArray(), generated, "", FinishReason.Length, 0, 0), null, 0, 0);

        var eos = new HashSet<int>(options.EosTokenIds ?? model.Config.EosTokenIds);
        var text = new TextTracker(decode, options.StopStrings);
        var ids = promptIds.Select(i => (long)i).ToArray();
        var plan = ServingPlan.Create(ParallelMode.Dense, 1, ids.Length - 1, 1, 0, new PlanChoices(), model.Config);
        var request = new PrefillRequest(ids[..^1], ids[^1..]) { CritiPrefill = criti };
        var build = KvStoreFactory.For(shadowKv)!;
        (ShadowKvStore? Store, long Device, long Host) kept = default;
        string? finish = null;
        var clock = Stopwatch.StartNew();
        double prefillMs = 0;
        var phase2 = new Phase2Options
        {
            MaxNewTokens = options.MaxNewTokens,
            StopIds = eos.Select(i => (long)i).ToArray(),
            Sampling = options.Greedy ? null : options,
            KvStore = (shard, m) =>
            {
                var store = (ShadowKvStore)build(shard, m);
                kept = (store, store.DeviceBytes, store.HostBytes); // sizes now: Phase 2 disposes it
                return store;
            },
            OnToken = id =>
            {
                if (generated.Count == 0) prefillMs = clock.Elapsed.TotalMilliseconds;
                int token = (int)id;
                generated.Add(token);
                bool isEos = eos.Contains(token), full = generated.Count >= options.MaxNewTokens;
                var (piece, stopped) = text.Add(isEos ? null : token, final: isEos || full);
                finish = stopped ? FinishReason.Stop : isEos ? FinishReason.Eos : full ? FinishReason.Length : null;
                onToken?.Invoke(new GeneratedToken(token, piece, generated.Count - 1, finish));
                if (stopped) throw new StopStringSeen();
            },
        };
        var rank = InProcessCollectiveGroup.Create(1, TimeSpan.FromMinutes(5), [model.Device]);
        using var scope = TorchSharp.torch.NewDisposeScope(); // frees the shard however the run ends (a stop string too)
        try
        {
            var (shard, _) = ParallelRun.Host(rank[0], model, plan, ParallelRun.For(ParallelMode.Dense, null), request, phase2);
            shard.Dispose();
        }
        catch (StopStringSeen) { }
        finally { CollectiveRunner.DisposeAll(rank); }
        double decodeMs = clock.Elapsed.TotalMilliseconds - prefillMs;
        var result = new GenerationResult(promptIds.ToArray(), generated, text.Text, finish ?? FinishReason.Length, prefillMs, decodeMs);
        return (result, kept.Store, kept.Device, kept.Host);
    }
}
