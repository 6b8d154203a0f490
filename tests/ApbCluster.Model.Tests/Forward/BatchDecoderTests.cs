using ApbCluster.Model.Attention;
using ApbCluster.Model.Forward;
using ApbCluster.Model.KvStores;
using ApbCluster.Model.Layers;
using ApbCluster.Model.Tests.Layers;
using Xunit;
using static TorchSharp.torch;

namespace ApbCluster.Model.Tests.Forward;

/// <summary>Batched decode of many sequences equals decoding each alone, token for token (CPU, fp32).</summary>
public class BatchDecoderTests
{
    private static LlamaModel Model() => TinyModels.Build(TinyModels.Llama, TinyModels.RandomWeights(TinyModels.Llama, seed: 5));

    /// <summary>Greedy decode of one prompt through the model's own KV-cached forward.</summary>
    private static long[] Alone(LlamaModel model, long[] prompt, int tokens)
    {
        using var cache = model.CreateCache(1, prompt.Length + tokens + 1);
        var result = new List<long>();
        var input = tensor(prompt, dtype: ScalarType.Int64).reshape(1, -1);
        for (int i = 0; i < tokens; i++)
        {
            using var logits = model.Forward(input, cache, lastPositionOnly: true);
            long next = logits[0, -1].argmax().item<long>();
            result.Add(next);
            input = tensor(new[] { next }, dtype: ScalarType.Int64).reshape(1, 1);
        }
        return result.ToArray();
    }

    private static long[] Prompt(int length, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, length).Select(_ => (long)rng.Next(3, 97)).ToArray();
    }

    [Fact]
    public void Sequences_of_different_lengths_admitted_at_different_steps_decode_as_alone()
    {
        using var model = Model();
        var prompts = new[] { Prompt(37, 1), Prompt(5, 2), Prompt(90, 3) };
        const int tokens = 12;
        var expected = prompts.Select(p => Alone(model, p, tokens)).ToArray();

        using var decoder = new BatchDecoder(model, slots: 4, capacity: 128);
        var got = prompts.Select(_ => new List<long>()).ToArray();
        var slotOf = new Dictionary<int, int>(); // slot -> prompt
        void Admit(int i)
        {
            var (slot, first) = decoder.Admit(prompts[i]);
            slotOf[slot] = i;
            got[i].Add(first);
        }
        Admit(0);
        Admit(1);
        for (int step = 0; got.Any(g => g.Count < tokens); step++)
        {
            if (step == 4) Admit(2); // joins a running batch
            foreach (var (slot, id) in decoder.Step())
            {
                var g = got[slotOf[slot]];
                g.Add(id);
                if (g.Count == tokens) decoder.Release(slot);
            }
        }
        for (int i = 0; i < prompts.Length; i++) Assert.Equal(expected[i], got[i].ToArray());
    }

    [Fact]
    public void With_a_context_store_the_slot_keeps_only_decoded_tokens_and_the_merge_is_exact()
    {
        using var model = Model();
        var prompts = new[] { Prompt(40, 11), Prompt(7, 12) };
        const int tokens = 10;
        var expected = prompts.Select(p => Alone(model, p, tokens)).ToArray();
        // The exact store over a copy of the prompt's KV: the merge of its (out, lse) with the slot's must change nothing.
        Func<KvCache, IKvStore> full = cache => new FullKvStore(
            Enumerable.Range(0, cache.NumLayers).Select(l => cache.Keys(l).clone().DetachFromDisposeScope()).ToArray(),
            Enumerable.Range(0, cache.NumLayers).Select(l => cache.Values(l).clone().DetachFromDisposeScope()).ToArray(), owns: true);
        using var decoder = new BatchDecoder(model, slots: 2, capacity: tokens + 1, contextStore: full);
        var got = new List<long>[2];
        var slotOf = new Dictionary<int, int>();
        for (int i = 0; i < 2; i++)
        {
            var (slot, first) = decoder.Admit(prompts[i]);
            slotOf[slot] = i;
            got[i] = [first];
            Assert.Equal(prompts[i].Length, decoder.Length(slot));
        }
        Assert.True(decoder.StoreBytes.Device > 0);
        while (got.Any(g => g.Count < tokens))
            foreach (var (slot, id) in decoder.Step())
                got[slotOf[slot]].Add(id);
        for (int i = 0; i < 2; i++) Assert.Equal(expected[i], got[i].Take(tokens).ToArray());
    }

    [Fact]
    public void A_released_slot_is_reused_with_an_empty_cache()
    {
        using var model = Model();
        using var decoder = new BatchDecoder(model, slots: 1, capacity: 64);
        var (slot, _) = decoder.Admit(Prompt(20, 4));
        decoder.Step();
        decoder.Release(slot);
        var prompt = Prompt(9, 5);
        var (again, first) = decoder.Admit(prompt);
        Assert.Equal(slot, again);
        Assert.Equal(9, decoder.Length(again));
        var rest = Enumerable.Range(0, 5).Select(_ => decoder.Step()[again]);
        Assert.Equal(Alone(model, prompt, 6), new[] { first }.Concat(rest).ToArray());
    }

    [Fact]
    public void Full_pools_and_full_slots_are_refused_with_the_numbers()
    {
        using var model = Model();
        using var decoder = new BatchDecoder(model, slots: 1, capacity: 16);
        var tooLong = Assert.Throws<ArgumentException>(() => decoder.Admit(Prompt(16, 6)));
        Assert.Contains("16 positions", tooLong.Message);
        var (slot, _) = decoder.Admit(Prompt(14, 7));
        Assert.Contains("all 1 KV pool slots", Assert.Throws<InvalidOperationException>(() => decoder.Admit(Prompt(3, 8))).Message);
        decoder.Step();
        decoder.Step();
        Assert.Contains($"slot {slot} is full", Assert.Throws<InvalidOperationException>(() => decoder.Step()).Message);
    }

    [Fact]
    public void The_ragged_kernel_script_compiles() => FusedAttention.WarmRagged();
}
