using ApbCluster.Contracts;
using ApbCluster.Runtime.DataPlane;
using ApbCluster.Runtime.Engine;

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
    [InlineData(AttentionMode.Apb)]
    [InlineData(AttentionMode.Ring)]
    public void Three_engines_over_tcp_generate_what_the_in_process_run_generates(AttentionMode mode)
    {
        var prompt = InProcessReference.Prompt(InProcessReference.Context(6), " How many marbles?");
        var (doc, question) = (prompt.Document.Select(x => (int)x).ToArray(), prompt.Question.Select(x => (int)x).ToArray());
        const int maxNew = 6;
        var expected = InProcessReference.Tokens(mode, 3, prompt, maxNew);

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
                var work = new RunShard("q", Akka.Actor.ActorRefs.Nobody, rank, 3, ["h0", "h1", "h2"], endpoints, null, mode,
                    QueryPlanning.ToShard(plan), "", doc, question, Contracts.GenerationOptions.Greedy(maxNew), 10_000);
                var c = new CollectiveFactory(listeners[rank], "cpu").Acquire(work, CancellationToken.None);
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
}
