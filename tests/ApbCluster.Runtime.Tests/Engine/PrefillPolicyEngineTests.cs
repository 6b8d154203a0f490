using ApbCluster.Contracts;
using ApbCluster.Parallel.Serving;
using ApbCluster.Engine;
using ApbCluster.Engine.DataPlane;

namespace ApbCluster.Runtime.Tests.Engine;

/// <summary>
/// The real engine under decode-first: a query decoding on the host gets a token out between every two layers of a
/// prefill that arrives meanwhile, and the prefill still ends. Asserted on the order of the events, not on their times.
/// </summary>
public sealed class PrefillPolicyEngineTests
{
    /// <summary>Both queries' events in the order they happened.</summary>
    private sealed class Timeline
    {
        private readonly List<string> _events = [];

        public IReadOnlyList<string> Events { get { lock (_events) return _events.ToList(); } }

        public void Add(string e) { lock (_events) _events.Add(e); }
    }

    private sealed class Events(Timeline timeline, string name, Action<int>? onToken = null) : IShardEvents
    {
        private int _tokens;

        public void LayerDone(int layer, int layers) => timeline.Add($"{name} layer {layer}");

        public void Token(long id)
        {
            timeline.Add($"{name} token");
            onToken?.Invoke(Interlocked.Increment(ref _tokens));
        }
    }

    [Fact]
    public void Decode_first_gives_a_running_decode_a_token_between_every_two_layers_of_a_new_prefill()
    {
        var spec = ModelSpec.Parse(InProcessReference.Model, null)!;
        using var listener = new DataPlaneListener("127.0.0.1", "127.0.0.1", 0);
        using var engine = new LlamaShardEngine(spec, "cpu", prefillPolicy: PrefillPolicy.DecodeFirst);
        var timeline = new Timeline();
        using var decoding = new ManualResetEventSlim();
        var guard = TimeSpan.FromMinutes(5); // a hang guard, not a speed check

        var running = Start(engine, listener, "running", sentences: 1, maxNew: 200, new Events(timeline, "running", n => { if (n == 2) decoding.Set(); }));
        Assert.True(decoding.Wait(guard), "the running query never decoded");
        var arriving = Start(engine, listener, "arriving", sentences: 12, maxNew: 1, new Events(timeline, "arriving"));
        Assert.True(Task.WaitAll([running, arriving], guard), "the queries did not finish: hung?");

        var events = timeline.Events.ToList();
        int lastRunningToken = events.FindLastIndex(e => e == "running token");
        var layers = Enumerable.Range(1, 4).Select(l => events.IndexOf($"arriving layer {l}")).ToArray();
        Assert.All(layers, i => Assert.True(i >= 0, string.Join("; ", events)));
        int checkedBoundaries = 0;
        for (int l = 0; l + 1 < layers.Length; l++)
        {
            if (layers[l] > lastRunningToken) break; // the running query had ended: nothing to wait for
            checkedBoundaries++;
            Assert.True(events.Skip(layers[l]).Take(layers[l + 1] - layers[l]).Contains("running token"),
                $"no running token between the arriving query's layers {l + 1} and {l + 2}: {string.Join("; ", events)}");
        }
        Assert.True(checkedBoundaries > 0, $"the running query ended before the prefill's first layer: {string.Join("; ", events)}");
        Assert.True(engine.Gate.Yields >= checkedBoundaries);
    }

    private static Task<ShardOutcome> Start(LlamaShardEngine engine, DataPlaneListener listener, string id, int sentences, int maxNew, IShardEvents events)
    {
        var prompt = InProcessReference.Prompt(InProcessReference.Context(sentences), " How many marbles?");
        var plan = InProcessReference.Plan(AttentionMode.Dense, 1, prompt);
        var ring = new ShardRing { Rank = 0, WorldSize = 1, HostIds = ["h0"], DataEndpoints = [listener.Endpoint], CollectiveTimeoutMs = 10_000 };
        var work = new ShardWork
        {
            Mode = AttentionMode.Dense,
            Plan = QueryPlanning.ToShard(plan),
            Document = prompt.Document.Select(x => (int)x).ToArray(),
            Question = prompt.Question.Select(x => (int)x).ToArray(),
            Generation = Contracts.GenerationOptions.Greedy(maxNew),
        };
        return Task.Factory.StartNew(() =>
        {
            var c = new CollectiveFactory(listener, "cpu").Acquire(id, ring, CancellationToken.None);
            try { return engine.Run(work, c.Collective, events, CancellationToken.None); }
            finally { c.End(clean: true); }
        }, TaskCreationOptions.LongRunning);
    }
}
