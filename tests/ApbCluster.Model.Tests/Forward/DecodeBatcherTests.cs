using ApbCluster.Model.Forward;
using ApbCluster.Model.Layers;
using ApbCluster.Model.Tests.Layers;
using Xunit;
using static TorchSharp.torch;

namespace ApbCluster.Model.Tests.Forward;

/// <summary>Sequences that share a <see cref="DecodeBatcher"/>, each on its own thread with its own KV cache, decode
/// exactly as alone while their layers' dense parts run as shared calls (CPU, fp32).</summary>
public class DecodeBatcherTests
{
    private static readonly TimeSpan HangGuard = TimeSpan.FromMinutes(2);

    private static LlamaModel Model() => TinyModels.Build(TinyModels.Llama, TinyModels.RandomWeights(TinyModels.Llama, seed: 9));

    /// <summary>Greedy decode through the model's one forward, its dense parts run by <paramref name="runner"/>
    /// (null: alone). Returns the tokens and the last step's hidden state.</summary>
    private static (long[] Tokens, float[] Hidden) Greedy(LlamaModel model, long[] prompt, int tokens, ILayerRunner? runner)
    {
        using var noGrad = no_grad();
        using var cache = model.CreateCache(1, prompt.Length + tokens + 1);
        var result = new List<long>();
        long[] input = prompt;
        float[] last = [];
        for (int i = 0; i < tokens; i++)
        {
            using var scope = NewDisposeScope();
            var positions = arange(cache.Length, cache.Length + input.Length, dtype: ScalarType.Int64);
            var h = model.Embed(tensor(input, dtype: ScalarType.Int64).reshape(1, -1));
            var hidden = model.RunLayers(h, model.Rope.Angles(positions, h.dtype), new CachedAttention(cache, model.Scale), runner: runner);
            var final = hidden.narrow(1, hidden.shape[1] - 1, 1);
            long next = model.Logits(final)[0, 0].argmax().item<long>();
            last = final.flatten().data<float>().ToArray();
            result.Add(next);
            input = [next];
        }
        return (result.ToArray(), last);
    }

    private static long[] Prompt(int length, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, length).Select(_ => (long)rng.Next(3, 97)).ToArray();
    }

    [Fact]
    public async Task Seated_sequences_of_different_lengths_share_calls_and_decode_as_alone()
    {
        using var model = Model();
        model.Rope.EnsureCapacity(256); // the threads only read the table
        var prompts = new[] { Prompt(23, 1), Prompt(4, 2), Prompt(41, 3) };
        const int tokens = 10;
        var alone = prompts.Select(p => Greedy(model, p, tokens, runner: null)).ToArray();

        var batcher = new DecodeBatcher();
        // Seated before any starts: the first to reach a layer waits for the others, so calls are shared.
        var seats = prompts.Select(_ => batcher.Join()).ToArray();
        var runs = prompts.Select((p, i) => Task.Factory.StartNew(() =>
        {
            using var seat = seats[i];
            return Greedy(model, p, tokens, seat);
        }, TaskCreationOptions.LongRunning)).ToArray();
        var results = await Task.WhenAll(runs).WaitAsync(HangGuard, TestContext.Current.CancellationToken);

        for (int i = 0; i < prompts.Length; i++)
        {
            Assert.Equal(alone[i].Tokens, results[i].Tokens);
            Assert.Equal(alone[i].Hidden.Length, results[i].Hidden.Length);
            for (int j = 0; j < alone[i].Hidden.Length; j++)
                Assert.True(Math.Abs(alone[i].Hidden[j] - results[i].Hidden[j]) <= 1e-5 * (1 + Math.Abs(alone[i].Hidden[j])),
                    $"sequence {i} hidden[{j}]: alone {alone[i].Hidden[j]}, batched {results[i].Hidden[j]}");
        }
        var stats = batcher.Stats;
        Assert.Equal(3, stats.Widest);
        Assert.True(stats.SharedCalls > 0);
        // Every row of every step went through exactly one call per layer part.
        long rowsPerLayerPart = prompts.Sum(p => p.Length + tokens - 1);
        Assert.Equal(rowsPerLayerPart * 2 * model.Layers.Count, stats.Rows);
    }

    [Fact]
    public async Task A_sequence_away_on_its_peers_does_not_hold_the_others()
    {
        using var model = Model();
        model.Rope.EnsureCapacity(256);
        var expected = Greedy(model, Prompt(17, 4), 6, runner: null).Tokens;
        var batcher = new DecodeBatcher();
        using var blocked = batcher.Join();
        using var seat = batcher.Join();
        using (blocked.Away()) // e.g. waiting for another host's part of its query, for as long as that takes
        {
            var run = Task.Factory.StartNew(() => Greedy(model, Prompt(17, 4), 6, seat).Tokens, TaskCreationOptions.LongRunning);
            Assert.Equal(expected, await run.WaitAsync(HangGuard, TestContext.Current.CancellationToken)); // a hang: it waited for the away one
        }
    }

    [Fact]
    public async Task A_sequence_that_leaves_releases_the_ones_waiting_for_it()
    {
        using var model = Model();
        model.Rope.EnsureCapacity(256);
        var expected = Greedy(model, Prompt(9, 5), 4, runner: null).Tokens;
        var batcher = new DecodeBatcher();
        var leaving = batcher.Join(); // seated, computing something else, then done without another layer
        using var seat = batcher.Join();
        var run = Task.Factory.StartNew(() => Greedy(model, Prompt(9, 5), 4, seat).Tokens, TaskCreationOptions.LongRunning);
        await Task.Delay(200, TestContext.Current.CancellationToken);
        Assert.False(run.IsCompleted, "ran before the other seated sequence reached a layer or left");
        leaving.Dispose();
        Assert.Equal(expected, await run.WaitAsync(HangGuard, TestContext.Current.CancellationToken)); // a hang: it waited for one that left
    }
}
