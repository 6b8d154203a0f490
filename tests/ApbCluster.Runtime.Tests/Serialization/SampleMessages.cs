using Akka.Actor;
using ApbCluster.Contracts;

namespace ApbCluster.Runtime.Tests.Serialization;

/// <summary>One filled-in instance of every contract type (edge values where they matter).</summary>
public static class SampleMessages
{
    public static IEnumerable<object> All(IActorRef someActor) => Core(someActor).Concat(Ops);

    /// <summary>Operations messages (drain, query list, trace).</summary>
    private static IEnumerable<object> Ops =>
    [
        new DrainHost("10.0.0.2:4053/gpu0"),
        new UndrainHost("10.0.0.2:4053/gpu0"),
        new HostDrainChanged("h0", true, true),
        new HostDrainChanged("nope", false, false),
        ListQueries.Instance,
        new QueryList([new QueryInfo("q-1", "prefill", 1_700_000_000_000, 32_000, 0, ["h0", "h1"]), new QueryInfo("q-2", "queued", 0, 0, 0, [])]),
        new QueryList([]),
        new TraceQuery("q-1"),
        new QueryNotFound("q-404"),
    ];

    private static IEnumerable<object> Core(IActorRef someActor) =>
    [
        new SubmitQuery("q-1", QueryContext.FromText("long context ✓ ünïcode"), "What?",
            new GenerationOptions(128, 0.7f, 0.9f, 42, ["</s>", "\n\n"]), AttentionMode.Apb,
            new ApbOptions(4096, 2048, CompressorKind.RetainingHeads)),
        new SubmitQuery("q-1b", QueryContext.FromText("doc"), "q", GenerationOptions.Greedy(2), AttentionMode.Apb, new ApbOptions(64, 32)),
        new SubmitQuery("q-2", QueryContext.FromTokens([0, 1, 128_000, int.MaxValue]), "",
            GenerationOptions.Greedy(1), AttentionMode.Dense, null),
        new SubmitQuery("q-3", QueryContext.FromText("doc"), "q", GenerationOptions.Greedy(2), AttentionMode.Apb, null, BlockSplitMode.Equal, true,
            new PrefillAttentionOptions(PrefillAttentionKind.CritiPrefill, 2048, null, 32, 0)),
        new SubmitQuery("q-4", QueryContext.FromText("doc"), "q", GenerationOptions.Greedy(2), AttentionMode.Dense, null,
            PrefillAttention: new PrefillAttentionOptions(PrefillAttentionKind.Full)),
        new SubmitQuery("q-5", QueryContext.FromText("doc"), "q", GenerationOptions.Greedy(2), AttentionMode.Apb, null,
            KvStore: new KvStoreOptions(KvStoreKind.ShadowKv, 160, null, 2048, 48, null, true)),
        new SubmitQuery("q-6", QueryContext.FromText("doc"), "q", GenerationOptions.Greedy(2), AttentionMode.Dense, null,
            KvStore: new KvStoreOptions(KvStoreKind.Full)),
        new QueryAccepted("q-1", new QueryPlanSummary(["h0", "h1", "h2"], [1000, 1000, 998], 4096, 2048)),
        new QueryAccepted("q-2", new QueryPlanSummary(["h0", "h1"], [500, 502], 64, 32, AttentionMode.Apb, 1000, 12, BlockSplitMode.Balanced,
            CompressorKind.QueryAware)),
        new PrefillProgress("q-1", "h1", 3, 32),
        new TokenChunk("q-1", 7, [11, 22, 33], " hello"),
        new QueryCompleted("q-1", "the answer", FinishReason.Stop,
            new PhaseTimings(1.5, 0.25, 1234.5, 1300, 456.75, 1800), 32_000, 17),
        new QueryCompleted("q-2", "", FinishReason.Length, new PhaseTimings(0, 0, 1, 2, 3, 4), 5, 1, [7], [],
            new RouterClock(10.5, 20.25, 230.5, 1234.75)),
        new QueryFailed("q-1", "host h1 died", "h1"),
        new QueryFailed("q-2", "bad input", null),
        new MalformedMessage("SQ1", 42, "ApbSerializer: malformed 'SQ1' payload (42 bytes): end of stream", "q-3"),
        new CancelQuery("q-1"),
        new QueryCancelled("q-1"),
        new RouterBusy("q-9", 16, 16),
        GetClusterStatus.Instance,
        new ClusterStatus("akka.tcp://apb@10.0.0.1:4053",
            [
                new HostStatus("h0", "akka.tcp://apb@10.0.0.2:4053", "cuda:0", 1L << 33, 80L << 30, "llama-3.1-8b", HostState.Ready, 123_456_789,
                    12L << 30, 256L << 30, 3L << 30),
                new HostStatus("h1", "akka.tcp://apb@10.0.0.3:4053", "cpu", 0, 0, "", HostState.Unreachable, 0),
            ], 2, 1),
        new ClusterStatus("", [], 0, 0),
        new RegisterHost("h0", someActor, "cpu", 100, 200, "none", HostState.Starting, 0, "127.0.0.1:4100"),
        new RegisterHost("h1", someActor, "cuda:0", 1, 2, "m", HostState.Ready, 3, "10.0.0.2:4060", "sha256:0123456789abcdef", "n-1", "AbCd+/==",
            40L << 30, 512L << 30, 7L << 30),
        new HostRegistered("h0", someActor),
        new JoinChallenge("h0", "3f9a0c"),
        new HostRefused("h0", JoinRefusal.ModelMismatch, "host h0 serves another model"),
        new RunShard("q-1", someActor,
            new ShardRing { Rank = 1, WorldSize = 3, HostIds = ["h0", "h1", "h2"], DataEndpoints = ["127.0.0.1:1", "127.0.0.1:2", "10.0.0.3:3"], CollectiveTimeoutMs = 10_000 },
            new ShardWork
            {
                Mode = AttentionMode.Apb, Plan = new ShardPlan([300, 150, 58], 64, 32, 16, true), Compressor = CompressorKind.QueryAware,
                Document = [1, 2, 3, 500], Question = [7, 8], Generation = GenerationOptions.Greedy(8),
            }),
        new RunShard("q-2", someActor,
            new ShardRing
            {
                Rank = 0, WorldSize = 2, HostIds = ["x", "y"], DataEndpoints = ["a:1", "b:2"], CollectiveTimeoutMs = 1,
                NcclUniqueId = [.. Enumerable.Range(0, 128).Select(i => (byte)i)], NcclRingId = "ring-7f3a",
            },
            new ShardWork
            {
                Mode = AttentionMode.Ring, Plan = new ShardPlan([4, 4], 0, 0, 0, false), Document = [], Question = [1],
                Generation = new GenerationOptions(4, 0.5f, 0.9f, 7, ["x"]),
            }),
        new RunShard("q-3", someActor,
            new ShardRing { Rank = 1, WorldSize = 2, HostIds = ["x", "y"], DataEndpoints = ["a:1", "b:2"], CollectiveTimeoutMs = 10_000, NcclRingId = "ring-7f3a", NcclReuse = true },
            new ShardWork
            {
                Mode = AttentionMode.Apb, Plan = new ShardPlan([1, 1], 16, 8, 1, false), Compressor = CompressorKind.RetainingHeads,
                Document = [3, 4], Question = [5], Generation = GenerationOptions.Greedy(2),
            }),
        new RunShard("q-4", someActor,
            new ShardRing { Rank = 0, WorldSize = 1, HostIds = ["x"], DataEndpoints = ["a:1"], CollectiveTimeoutMs = 10_000 },
            new ShardWork
            {
                Mode = AttentionMode.Dense, Plan = new ShardPlan([9], 0, 0, 0, false), Document = [3, 4], Question = [5], Generation = GenerationOptions.Greedy(2),
                PrefillAttention = new PrefillAttentionOptions(PrefillAttentionKind.CritiPrefill, 2048, 512, 32, 4096),
            }),
        new RunShard("q-5", someActor,
            new ShardRing { Rank = 0, WorldSize = 1, HostIds = ["x"], DataEndpoints = ["a:1"], CollectiveTimeoutMs = 10_000 },
            new ShardWork
            {
                Mode = AttentionMode.Apb, Plan = new ShardPlan([9], 0, 0, 0, false), Compressor = CompressorKind.Random, Document = [3, 4], Question = [5],
                Generation = GenerationOptions.Greedy(2), KvStore = new KvStoreOptions(KvStoreKind.ShadowKv, 160, 8, 2048, 48, 4, false),
            }),
        new ShardTokens("q-1", 3, [42]),
        new ShardFinished("q-1", "h2", 2, 12.5, 99.25, 8),
        new ShardFailed("q-1", "h0", "layer 2 passing block: peer h1 disconnected", "h1", true),
        new ShardFailed("q-1", "h0", "oom", null, false),
        new NcclIdRequest("q-1"),
        new NcclIdReply("q-1", [1, 2, 3], null),
        new NcclIdReply("q-1", null, "no NCCL"),
        new NcclRingCheck("q-1", "ring-7f3a"),
        new NcclRingStatus("q-1", "10.0.0.2:4053/gpu0", "ring-7f3a", true),
        new NcclRingStatus("q-1", "h1", "", false),
        new DropNcclRing("ring-7f3a", "host h1 was removed"),
    ];
}
