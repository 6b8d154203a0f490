using ApbCluster.Contracts;
using ApbCluster.Engine.DataPlane;
using ApbCluster.Engine;
using ApbCluster.Model.KvStores;

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

    /// <summary>Holds each query at its first token until released, so a test can read the engine while both run.</summary>
    private sealed class FirstTokenGate : IShardEvents
    {
        public readonly ManualResetEventSlim Reached = new();
        public readonly ManualResetEventSlim Release = new();
        private int _tokens;

        public void LayerDone(int layer, int layers) { }

        public void Token(long id)
        {
            if (Interlocked.Increment(ref _tokens) != 1) return;
            Reached.Set();
            Release.Wait(TimeSpan.FromMinutes(5)); // a hang guard
        }
    }

    [Fact]
    public void Two_queries_on_one_host_hold_the_sum_of_a_full_shard_and_a_shadowkv_store_and_nothing_after()
    {
        var spec = ModelSpec.Parse(InProcessReference.Model, null)!;
        using var listener = new DataPlaneListener("127.0.0.1", "127.0.0.1", 0);
        // Unbatched: a query held in its token callback would hold a shared decode step's other queries too.
        using var engine = new LlamaShardEngine(spec, "cpu", batchDecode: false, hostKvBudget: 64L << 20);
        var shadow = new ShadowKvOptions { Rank = 8, Chunk = 4, Budget = 16, Outliers = 2, Local = 1, Values = ShadowKvValues.Host };
        var ring = new ShardRing { Rank = 0, WorldSize = 1, HostIds = ["h0"], DataEndpoints = [listener.Endpoint], CollectiveTimeoutMs = 10_000 };
        ShardWork Work(int sentences, KvStoreOptions? kv)
        {
            var prompt = InProcessReference.Prompt(InProcessReference.Context(sentences), " How many marbles?");
            return new ShardWork
            {
                Mode = AttentionMode.Dense, Plan = QueryPlanning.ToShard(InProcessReference.Plan(AttentionMode.Dense, 1, prompt)),
                Document = prompt.Document.Select(x => (int)x).ToArray(), Question = prompt.Question.Select(x => (int)x).ToArray(),
                Generation = Contracts.GenerationOptions.Greedy(4), KvStore = kv,
            };
        }
        var full = Work(6, null);
        var sparse = Work(10, ShadowKvWire.ToWire(shadow));
        var gates = new[] { new FirstTokenGate(), new FirstTokenGate() };
        var runs = new[] { full, sparse }.Select((work, i) => Task.Factory.StartNew(() =>
        {
            var c = new CollectiveFactory(listener, "cpu").Acquire(i == 0 ? "full" : "shadowkv", ring, CancellationToken.None);
            try { return engine.Run(work, c.Collective, gates[i], CancellationToken.None); }
            finally { c.End(clean: true); }
        }, TaskCreationOptions.LongRunning)).ToArray();
        try
        {
            Assert.All(gates, g => Assert.True(g.Reached.Wait(TimeSpan.FromMinutes(3)), "a query never reached its first token"));
            // Both at their first token: the full query's shard (CPU fp32: 4 layers x 2 kv heads x 16 x K,V x 4 bytes =
            // 1 KiB per document token) plus the ShadowKV store's device part; its values count as host memory.
            var (device, host) = ShadowKvStore.EstimateBytes(sparse.Document.Count, engine.Model.Config, shadow);
            Assert.True(host > 0);
            Assert.Equal(full.Document.Count * 1024L + device, engine.KvBytes);
            Assert.Equal(host, engine.HostKvBytes);
            Assert.Equal(new DeviceMemory(host, 64L << 20), engine.HostMemory()); // held against the host KV budget
        }
        finally
        {
            foreach (var g in gates) g.Release.Set();
        }
        Assert.True(Task.WaitAll(runs, TimeSpan.FromMinutes(5)), "the queries did not finish: hung?");
        Assert.Equal((0L, 0L), (engine.KvBytes, engine.HostKvBytes)); // both given back
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
