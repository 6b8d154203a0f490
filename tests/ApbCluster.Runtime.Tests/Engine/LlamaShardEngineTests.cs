using ApbCluster.Contracts;
using ApbCluster.Engine.DataPlane;
using ApbCluster.Engine;

namespace ApbCluster.Runtime.Tests.Engine;

/// <summary>The real engine over the TCP data plane equals the in-process run, token for token.</summary>
public sealed class LlamaShardEngineTests
{
    private sealed class Recorder : IShardEvents
    {
        public readonly List<(int, int)> Layers = [];
        public readonly List<long> Tokens = [];

        public void LayerDone(int layer, int layers)
        {
            lock (Layers) Layers.Add((layer, layers));
        }

        public void Token(long id)
        {
            lock (Tokens) Tokens.Add(id);
        }
    }

    [Theory]
    [InlineData(AttentionMode.Apb, false)]
    [InlineData(AttentionMode.Ring, false)]
    [InlineData(AttentionMode.Apb, true)]
    public void Three_engines_over_tcp_generate_what_the_in_process_run_generates(AttentionMode mode, bool critiPrefill)
    {
        var prompt = InProcessReference.Prompt(InProcessReference.Context(6), " How many marbles?");
        var (doc, question) = (prompt.Document.Select(x => (int)x).ToArray(), prompt.Question.Select(x => (int)x).ToArray());
        const int maxNew = 6;
        // The router's resolved CritiPrefill (segment, block and budget 4: every host keeps one block of its local past per segment).
        var attention = critiPrefill ? new PrefillAttentionOptions(PrefillAttentionKind.CritiPrefill, 4, 4, 4, 0) : null;
        var options = LlamaShardEngine.CritiPrefillOf(attention);
        var expected = InProcessReference.Tokens(mode, 3, prompt, maxNew, options);

        var spec = ModelSpec.Parse(InProcessReference.Model, null)!;
        var plan = InProcessReference.Plan(mode, 3, prompt);
        var listeners = Enumerable.Range(0, 3).Select(_ => new DataPlaneListener("127.0.0.1", "127.0.0.1", 0)).ToArray();
        var engines = Enumerable.Range(0, 3).Select(_ => new LlamaShardEngine(spec, "cpu")).ToArray();
        var recorders = Enumerable.Range(0, 3).Select(_ => new Recorder()).ToArray();
        try
        {
            var endpoints = listeners.Select(l => l.Endpoint).ToList();
            var runs = Enumerable.Range(0, 3).Select(rank => Task.Factory.StartNew(() =>
            {
                var ring = new ShardRing { Rank = rank, WorldSize = 3, HostIds = ["h0", "h1", "h2"], DataEndpoints = endpoints, CollectiveTimeoutMs = 10_000 };
                var work = new ShardWork
                {
                    Mode = mode, Plan = QueryPlanning.ToShard(plan), Document = doc, Question = question,
                    Generation = Contracts.GenerationOptions.Greedy(maxNew), PrefillAttention = attention,
                };
                var c = new CollectiveFactory(listeners[rank], "cpu").Acquire("q", ring, CancellationToken.None);
                try { return engines[rank].Run(work, c.Collective, recorders[rank], CancellationToken.None); }
                finally { c.End(clean: true); }
            }, TaskCreationOptions.LongRunning)).ToArray();
            Assert.True(Task.WaitAll(runs, TimeSpan.FromMinutes(10)), "engines did not finish in 10 minutes: hung?"); // a hang guard, not a speed check

            Assert.Equal(expected, recorders[2].Tokens);
            Assert.All(runs, r => Assert.Equal(expected.Length, r.Result.GeneratedTokens));
            Assert.Equal(Enumerable.Range(1, 4).Select(i => (i, 4)), recorders[0].Layers);
            Assert.All(engines, e => Assert.Equal(0, e.KvBytes)); // KV freed after the run
        }
        finally
        {
            foreach (var e in engines) e.Dispose();
            foreach (var l in listeners) l.Dispose();
        }
    }

    [Fact]
    public void The_engine_prefills_with_the_prefill_attention_it_is_given()
    {
        // A ring query with CritiPrefill never leaves the router; handed to an engine anyway, the strategy refuses it,
        // which shows the option reaches the prefill.
        var prompt = InProcessReference.Prompt(InProcessReference.Context(2), " How many marbles?");
        var spec = ModelSpec.Parse(InProcessReference.Model, null)!;
        var plan = InProcessReference.Plan(AttentionMode.Ring, 1, prompt);
        using var listener = new DataPlaneListener("127.0.0.1", "127.0.0.1", 0);
        using var engine = new LlamaShardEngine(spec, "cpu");
        var ring = new ShardRing { Rank = 0, WorldSize = 1, HostIds = ["h0"], DataEndpoints = [listener.Endpoint], CollectiveTimeoutMs = 10_000 };
        var work = new ShardWork
        {
            Mode = AttentionMode.Ring, Plan = QueryPlanning.ToShard(plan), Document = prompt.Document.Select(x => (int)x).ToArray(),
            Question = prompt.Question.Select(x => (int)x).ToArray(), Generation = Contracts.GenerationOptions.Greedy(2),
            PrefillAttention = new PrefillAttentionOptions(PrefillAttentionKind.CritiPrefill, 4, 4, 4, 0),
        };
        var c = new CollectiveFactory(listener, "cpu").Acquire("q", ring, CancellationToken.None);
        try
        {
            var e = Assert.ThrowsAny<Exception>(() => engine.Run(work, c.Collective, new Recorder(), CancellationToken.None));
            Assert.Contains("CritiPrefill runs with dense, apb and star prefill, not ring", e.Message);
        }
        finally { c.End(clean: false); }
    }
}
