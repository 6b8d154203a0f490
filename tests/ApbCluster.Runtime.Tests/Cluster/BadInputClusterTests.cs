using System.Diagnostics;
using ApbCluster.Contracts;
using ApbCluster.Runtime.Tests.Engine;

namespace ApbCluster.Runtime.Tests.Cluster;

/// <summary>
/// Bad input through the actor API against a real loopback cluster (a router and 2 gpu-host node
/// processes, random:tiny:7 with max_position_embeddings 65536): every bad query gets one QueryFailed
/// whose reason names the problem, and never reaches a host; so do bytes the ApbSerializer rejects
/// (truncated, unknown manifest, unknown version), which the receiving node also logs.
/// Afterwards the cluster still answers a normal query.
/// </summary>
[Collection(LoopbackClusterCollection.Name)]
public sealed class BadInputClusterTests
{
    private static readonly TimeSpan ReplyBound = TimeSpan.FromSeconds(10);
    private static readonly string Context = InProcessReference.Context(6);
    private const string Question = " How many marbles are in box 3?";

    private static SubmitQuery Good(string id) =>
        new(id, QueryContext.FromText(Context), Question, GenerationOptions.Greedy(3), AttentionMode.Apb, null);

    public static IEnumerable<(string Name, SubmitQuery Query, string[] ReasonContains)> BadQueries()
    {
        var g = GenerationOptions.Greedy(3);
        yield return ("empty context text", Good("bad-empty-text") with { Context = QueryContext.FromText("") }, ["context is empty"]);
        yield return ("no context at all", Good("bad-null-context") with { Context = new QueryContext(null, null) }, ["context is empty"]);
        yield return ("empty token ids", Good("bad-empty-ids") with { Context = QueryContext.FromTokens([]) }, ["context is empty"]);
        yield return ("context over the model's limit", Good("bad-too-long") with { Context = QueryContext.FromTokens(Enumerable.Repeat(40, 65_536).ToArray()) },
            ["context (65536)", "exceeds the model's limit of 65536"]);
        yield return ("text context over the limit", Good("bad-too-long-text") with { Context = QueryContext.FromText(new string('x', 70_000)) },
            ["exceeds the model's limit of 65536"]);
        yield return ("token id outside the vocabulary", Good("bad-token-id") with { Context = QueryContext.FromTokens([5, 99_999, 7]) }, ["99999", "outside the vocabulary"]);
        yield return ("negative token id", Good("bad-negative-id") with { Context = QueryContext.FromTokens([5, -1]) }, ["-1", "outside the vocabulary"]);
        yield return ("empty question", Good("bad-question") with { Question = "" }, ["question is empty"]);
        yield return ("unknown mode", Good("bad-mode") with { Mode = (AttentionMode)9 }, ["unknown attention mode 9"]);
        yield return ("unknown mode 255", Good("bad-mode-255") with { Mode = (AttentionMode)255 }, ["unknown attention mode 255"]);
        yield return ("max new tokens negative", Good("bad-max-neg") with { Generation = g with { MaxNewTokens = -5 } }, ["max new tokens -5", "outside 1..8192"]);
        yield return ("max new tokens zero", Good("bad-max-zero") with { Generation = g with { MaxNewTokens = 0 } }, ["max new tokens 0"]);
        yield return ("max new tokens huge", Good("bad-max-huge") with { Generation = g with { MaxNewTokens = int.MaxValue } }, [$"max new tokens {int.MaxValue}"]);
        yield return ("temperature NaN", Good("bad-temp-nan") with { Generation = g with { Temperature = float.NaN } }, ["temperature"]);
        yield return ("temperature negative", Good("bad-temp-neg") with { Generation = g with { Temperature = -1 } }, ["temperature -1"]);
        yield return ("top-p zero", Good("bad-top-p") with { Generation = g with { TopP = 0 } }, ["top-p 0"]);
        yield return ("top-p above 1", Good("bad-top-p-2") with { Generation = g with { TopP = 2 } }, ["top-p 2"]);
        yield return ("anchor negative", Good("bad-anchor-neg") with { Apb = new ApbOptions(-1, 8) }, ["anchor (-1)", "must not be negative"]);
        yield return ("passing negative", Good("bad-passing-neg") with { Apb = new ApbOptions(16, -3) }, ["passing (-3)", "must not be negative"]);
        yield return ("anchor huge", Good("bad-anchor-huge") with { Apb = new ApbOptions(int.MaxValue, 8) }, ["cannot plan", "anchor length", "longer than a block"]);
        yield return ("anchor longer than the block", Good("bad-anchor-block") with { Apb = new ApbOptions(10_000, 8) }, ["cannot plan", "l_a (10000)"]);
        yield return ("passing longer than the block", Good("bad-passing-block") with { Apb = new ApbOptions(32, 10_000) }, ["cannot plan", "10000"]);
        yield return ("passing huge", Good("bad-passing-huge") with { Apb = new ApbOptions(32, int.MaxValue) }, ["cannot plan", $"{int.MaxValue}"]);
        yield return ("unknown compressor", Good("bad-compressor") with { Apb = new ApbOptions(32, 8, (CompressorKind)9) }, ["unknown compressor 9", "retaining-heads"]);
        yield return ("empty query id", Good(" "), ["query id is empty"]);
    }

    [Fact]
    public async Task Bad_input_fails_clearly_and_leaves_the_cluster_healthy()
    {
        var ct = TestContext.Current.CancellationToken;
        var output = TestContext.Current.TestOutputHelper!;
        var clock = Stopwatch.StartNew();
        using var cluster = await LoopbackCluster.StartAsync(hostNodes: 2, ct: ct);
        output.WriteLine($"cluster ready in {clock.Elapsed.TotalSeconds:0.0}s");
        await using var client = cluster.Connect(idleTimeout: ReplyBound);
        await using var raw = new RawClusterClient(cluster.RouterContact);

        await AssertHealthy("before", cluster, client, ct);

        // 1. Well-formed messages with bad values, through ClusterQueryClient: one QueryFailed each, naming the problem.
        foreach (var (name, query, reasonContains) in BadQueries())
        {
            var (terminal, chunks) = await client.AskToEndAsync(query, ct);
            var failed = Assert.IsType<QueryFailed>(terminal, exactMatch: false);
            output.WriteLine($"{name,-32} -> {failed.Reason}");
            if (failed.Reason.StartsWith("no reply", StringComparison.Ordinal)) Assert.Fail($"{name}: no reply\n{cluster.Outputs(30000)}");
            foreach (var part in reasonContains)
                Assert.True(failed.Reason.Contains(part, StringComparison.Ordinal), $"{name}: reason '{failed.Reason}' does not contain '{part}'");
            Assert.Null(failed.FailingHost); // refused by the router: no host is to blame
            Assert.Empty(chunks);
        }
        Assert.DoesNotContain(cluster.HostOutputs(), s => s.Contains("runs query bad-", StringComparison.Ordinal));
        await AssertHealthy("after bad values", cluster, client, ct);

        // 2. A SubmitQuery whose mode byte is corrupted on the wire: the router names the value.
        var probe = Good("raw-mode") with { Mode = AttentionMode.Apb };
        var bytes = raw.Serialize(probe);
        var other = raw.Serialize(probe with { Mode = AttentionMode.Ring });
        var modeAt = Enumerable.Range(0, bytes.Length).Single(i => bytes[i] != other[i]);
        bytes[modeAt] = 42;
        var replies = await raw.SendAndCollect(new RawWire("SQ5", bytes), ReplyBound, quiet: TimeSpan.FromSeconds(1));
        var modeFailure = Assert.IsType<QueryFailed>(Assert.Single(replies));
        output.WriteLine($"{"corrupted mode byte (42)",-32} -> {modeFailure.Reason}");
        Assert.Contains("unknown attention mode 42", modeFailure.Reason);

        // 3. Bytes the serializer rejects: the router node logs the serializer's reason, the sender gets one
        // QueryFailed naming it (with the query id when the damaged payload still holds it), the node stays up and
        // the same client's next query works.
        var good = raw.Serialize(Good("raw-good"));
        var malformed = new (string Name, RawWire Wire, string Reason, string QueryId)[]
        {
            ("truncated SubmitQuery", new RawWire("SQ5", good[..(good.Length / 2)]), $"malformed 'SQ5' payload ({good.Length / 2} bytes)", "raw-good"),
            ("unknown manifest", new RawWire("ZZ9", good), "unknown manifest 'ZZ9'", ""),
            ("unknown format version", new RawWire("SQ5", [7, .. good[1..]]), "format version 7", "raw-good"),
            ("empty payload", new RawWire("SQ5", []), "malformed 'SQ5' payload: it is empty", ""),
        };
        foreach (var (name, wire, reason, queryId) in malformed)
        {
            var got = await raw.SendAndCollect(wire, ReplyBound, quiet: TimeSpan.FromSeconds(1));
            var failure = Assert.IsType<QueryFailed>(Assert.Single(got));
            Assert.True(failure.Reason.Contains(reason, StringComparison.Ordinal) && failure.Reason.Contains($"'{wire.Manifest}' message ({wire.Bytes.Length} bytes)", StringComparison.Ordinal),
                $"{name}: reason '{failure.Reason}'");
            Assert.Equal((queryId, null), (failure.QueryId, failure.FailingHost));
            await Eventually($"{name}: the router logs '{reason}'", TimeSpan.FromSeconds(5),
                () => cluster.Router.Output.Contains(reason, StringComparison.Ordinal), cluster);
            output.WriteLine($"{name,-32} -> {failure.Reason}");
            var after = await raw.SendAndCollect(Good($"raw-after-{wire.Manifest}-{wire.Bytes.Length}"), ReplyBound, TimeSpan.FromMilliseconds(500));
            Assert.True(after.Count(IsTerminal) == 1 && after[^1] is QueryCompleted, $"{name}: the next query on the same connection got {string.Join(", ", after)}\n{cluster.Outputs()}");
        }
        await AssertHealthy("after malformed bytes", cluster, client, ct);
        output.WriteLine($"total {clock.Elapsed.TotalSeconds:0.0}s");
    }

    private static bool IsTerminal(IQueryMessage e) => e is QueryCompleted or QueryFailed or QueryCancelled or RouterBusy;

    private static async Task AssertHealthy(string when, LoopbackCluster cluster, ApbCluster.Client.ClusterQueryClient client, CancellationToken ct)
    {
        Assert.True(cluster.AllRunning, $"{when}: a node exited\n{cluster.Outputs()}");
        var status = await client.StatusAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(2, status.Hosts.Count);
        Assert.Equal((0, 0), (status.QueueDepth, status.InFlight));
        var (terminal, chunks) = await client.AskToEndAsync(Good($"healthy-{when.Replace(' ', '-')}"), ct);
        Assert.True(terminal is QueryCompleted, $"{when}: a normal query ended with {terminal}\n{cluster.Outputs()}");
        Assert.NotEmpty(chunks);
    }

    private static async Task Eventually(string what, TimeSpan bound, Func<bool> condition, LoopbackCluster cluster)
    {
        var deadline = DateTime.UtcNow + bound;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) Assert.Fail($"not within {bound.TotalSeconds}s: {what}\n{cluster.Outputs()}");
            await Task.Delay(100);
        }
    }
}
