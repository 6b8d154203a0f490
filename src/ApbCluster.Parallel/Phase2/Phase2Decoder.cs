using ApbCluster.Model.Forward;
using ApbCluster.Model;
using ApbCluster.Model.Attention;
using ApbCluster.Model.Generation;
using ApbCluster.Model.KvStores;
using ApbCluster.Model.Layers;
using ApbCluster.Parallel.Collectives;
using ApbCluster.Parallel.Strategies;
using static TorchSharp.torch;

namespace ApbCluster.Parallel.Phase2;

public sealed record Phase2Options
{
    public int MaxNewTokens { get; init; } = 32;
    /// <summary>Stop ids; null = the model's EOS ids.</summary>
    public IReadOnlyList<long>? StopIds { get; init; }
    /// <summary>Temperature / top-p / seed for the model's <see cref="Sampler"/>; null = greedy.</summary>
    public GenerationOptions? Sampling { get; init; }
    public bool Timing { get; init; }
    /// <summary>Called on every host with each generated id as soon as it is known (streaming; an exception
    /// thrown here stops generation).</summary>
    public Action<long>? OnToken { get; init; }
    /// <summary>How the host's shard is kept for decoding (ShadowKV, ...); null: every key, as prefilled. The store is
    /// built after prefill and disposed when Phase 2 ends; it may free what it no longer needs from the shard.</summary>
    public Func<HostShard, LlamaModel, IKvStore>? KvStore { get; init; }
    /// <summary>The host's batcher: this query's decode steps share their layers' dense parts with the host's other
    /// running queries (<see cref="DecodeBatcher"/>); null: the query runs them alone.</summary>
    public DecodeBatcher? Batcher { get; init; }
}

/// <summary>Generated ids (identical on every host), the time of the question pass and of each decode step.</summary>
public sealed record Phase2Result(long[] Tokens, TimeSpan QuestionTime, IReadOnlyList<TimeSpan> StepTimes, PhaseTimer Timings);

/// <summary>
/// Phase 2 (spec): the question, then each generated token, runs on every host through every layer.
/// Per layer each host attends the new tokens to its cached shard WITHOUT a causal mask (the shard lies
/// wholly before them; the reference's causal mask there is a bug), the last host also attends causally
/// over the new tokens' own KV (which only it keeps); the partial (out, lse) are all-gathered and merged
/// exactly, in rank order, so every host continues with the same attention output. Only the last host
/// computes logits and samples; it broadcasts the token.
/// </summary>
public static class Phase2Decoder
{
    public static Phase2Result Run(ICollective collective, LlamaModel model, HostShard shard, int documentLength, long[] question, Phase2Options? options = null)
    {
        options ??= new Phase2Options();
        var c = collective;
        if (question.Length == 0) throw new ArgumentException("Phase 2 needs at least one question token (the prompt's last token gives the first logits).");
        using var noGrad = no_grad();
        var timer = new PhaseTimer(options.Timing, model.Device);
        bool last = c.Rank == c.WorldSize - 1;
        var stop = options.StopIds ?? model.Config.EosTokenIds.Select(x => (long)x).ToArray();
        lock (model.Rope) model.Rope.EnsureCapacity(documentLength + question.Length + options.MaxNewTokens + 1);
        using var own = last ? model.CreateCache(1, question.Length + options.MaxNewTokens) : null;
        using var sampler = last && options.Sampling is { } g ? new Sampler(g, model.Device) : null;
        using var context = options.KvStore?.Invoke(shard, model) ?? new FullKvStore(shard.Keys, shard.Values);
        // Seated only now: the host's batches wait for seated queries that compute, and building a store (ShadowKV's
        // factorisation) is seconds of work that must not hold the others' steps.
        using var seat = options.Batcher?.Join();
        if (seat is not null) c = new SeatedCollective(collective, seat);

        var tokens = new List<long>();
        var steps = new List<TimeSpan>();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        long[] input = question;
        long position = documentLength;
        TimeSpan questionTime = default;
        while (tokens.Count < options.MaxNewTokens)
        {
            long next;
            using (var scope = NewDisposeScope())
            {
                var hidden = Step(c, model, context, own, input, position, timer, seat);
                long id = -1;
                if (last)
                {
                    var logits = model.Logits(hidden.narrow(1, hidden.shape[1] - 1, 1))[.., 0]; // [1, vocab]
                    id = sampler is null ? logits[0].argmax().item<long>() : sampler.Sample(logits)[0].item<long>();
                }
                var sent = last ? tensor(new[] { id }, dtype: ScalarType.Int64).to(model.Device) : null;
                next = c.Broadcast(sent, [1], ScalarType.Int64, c.WorldSize - 1, "next token").cpu().item<long>();
            }
            position += input.Length;
            if (tokens.Count == 0) questionTime = clock.Elapsed; else steps.Add(clock.Elapsed);
            clock.Restart();
            tokens.Add(next);
            options.OnToken?.Invoke(next);
            if (stop.Contains(next)) break;
            input = [next];
        }
        return new Phase2Result(tokens.ToArray(), questionTime, steps, timer);
    }

    /// <summary>One pass of <paramref name="ids"/> at positions from <paramref name="position"/>: final hidden [1, s, hidden].</summary>
    private static Tensor Step(ICollective c, LlamaModel model, IKvStore context, KvCache? own, long[] ids, long position, PhaseTimer timer,
        ILayerRunner? runner)
    {
        var device = model.Device;
        var positions = TorchConstants.Positions(position, position + ids.Length, device);
        var h = model.Embed(tensor(ids, dtype: ScalarType.Int64).reshape(1, -1).to(device));
        var angles = model.Rope.Angles(positions, h.dtype); // once for all layers
        return model.RunLayers(h, angles, new ShardAttention(c, context, own, model.Scale, timer), timer, runner: runner);
    }

    /// <summary>Phase 2's attention: the host's context, the last host's own new tokens, merged across hosts.</summary>
    private sealed class ShardAttention(ICollective c, IKvStore context, KvCache? own, double scale, PhaseTimer timer) : IAttentionBackend
    {
        public Tensor Attend(int layer, Tensor hidden, QkvProjection p)
        {
            (Tensor Out, Tensor Lse) part;
            using (timer.Measure(PhaseTimer.Attention))
            {
                part = context.Attend(layer, p.Q, scale);
                if (own is not null)
                {
                    own.Append(layer, p.K, p.V);
                    part = LseMerge.Merge(part, FusedAttention.Attend(p.Q, own.Keys(layer), own.Values(layer), causal: true, scale));
                }
            }
            using (timer.Measure(PhaseTimer.Passing))
            {
                // Every host sends its part in fp32 (the last host's is already a merge): the H-way merge then
                // accumulates in fp32 and rounds once, to the model's dtype.
                var outs = c.AllGather(part.Out.to(ScalarType.Float32), $"layer {layer} phase-2 out");
                var lses = c.AllGather(part.Lse, $"layer {layer} phase-2 lse");
                return LseMerge.MergeAll(outs.Zip(lses, (o, l) => (o, l)).ToArray(), hidden.dtype).Out;
            }
        }
    }
}
