using Akka.Actor;
using ApbCluster.Contracts;

namespace ApbCluster.Runtime.Tests.Http;

/// <summary>
/// TEST-ONLY fake of the router, used solely to test the HTTP layer's mapping of every contract
/// reply to HTTP (statuses, error bodies, SSE). It answers by the question text:
/// "busy" RouterBusy, "host dies" QueryFailed naming a host, "no hosts" the router's no-host
/// failure, "crash" an internal failure with a stack trace, "hang" nothing (deadline), anything
/// else accepted + progress + 2 chunks + completed. A dense query answers what it was given
/// ("dense: CONTEXT|QUESTION"), so tests can see how a request was mapped.
/// The real router is exercised by HttpClusterTests.
/// </summary>
public sealed class FakeRouterForHttpMappingTests : ReceiveActor
{
    public FakeRouterForHttpMappingTests()
    {
        Receive<GetClusterStatus>(_ => Sender.Tell(new ClusterStatus("fake",
            [new HostStatus("h0", "a", "cpu", 0, 0, "random:tiny:7", HostState.Ready, 0)], 0, 0)));
        Receive<CancelQuery>(c => Cancelled.Add(c.QueryId));
        Receive<SubmitQuery>(q =>
        {
            var id = q.QueryId;
            switch (q.Question)
            {
                case "busy":
                    Sender.Tell(new RouterBusy(id, 8, 8));
                    break;
                case "host dies":
                    Sender.Tell(new QueryAccepted(id, new QueryPlanSummary(["h0"], [10], 0, 0)));
                    Sender.Tell(new QueryFailed(id, "host h0 stopped answering", "h0"));
                    break;
                case "no hosts":
                    Sender.Tell(new QueryFailed(id, "no GPU hosts are registered", null));
                    break;
                case "too much kv": // QueryRouter's admission refusal (KvAdmission.NeverFits)
                    Sender.Tell(new QueryFailed(id, "the query needs 4.0 MiB of KV on host h0, which can hold at most 2.0 MiB (a shorter context, fewer new tokens or more hosts would fit)", null));
                    break;
                case "hang":
                    break;
                case "crash":
                    Sender.Tell(new QueryFailed(id, "System.InvalidOperationException: tensor shape mismatch\n   at TorchSharp.torch.Tensor.matmul() in /opt/apb/lib/libtorch.so\n   at ApbCluster.Model.Attention.Run()", null));
                    break;
                case var _ when q.Mode == AttentionMode.Dense:
                    var echo = $"dense: {q.Context.Text}|{q.Question}";
                    Sender.Tell(new TokenChunk(id, 0, [1], echo));
                    Sender.Tell(new QueryCompleted(id, echo, FinishReason.EndOfSequence, new PhaseTimings(0, 0, 1, 2, 3, 4), 3, 1));
                    break;
                default:
                    Sender.Tell(new QueryAccepted(id, new QueryPlanSummary(["h0", "h1"], [5, 5], 2, 1)));
                    Sender.Tell(new PrefillProgress(id, "h0", 1, 2));
                    Sender.Tell(new TokenChunk(id, 0, [1], "Hello"));
                    Sender.Tell(new TokenChunk(id, 1, [2], ", world"));
                    Sender.Tell(new QueryCompleted(id, "Hello, world", FinishReason.Length,
                        new PhaseTimings(0, 0, 1, 2, 3, 4), q.Context.Text!.Length, q.Generation.MaxNewTokens));
                    break;
            }
        });
    }

    /// <summary>Query ids the HTTP layer cancelled (client gone, deadline).</summary>
    public static readonly System.Collections.Concurrent.ConcurrentBag<string> Cancelled = [];
}
