using Akka.Actor;
using ApbCluster.Contracts;
using ApbCluster.NativeInterop;
using ApbCluster.Engine.DataPlane;
using ApbCluster.Engine;
using ApbCluster.Runtime.Metrics;

namespace ApbCluster.Runtime.Actors;

/// <summary>
/// One rank of one query on a dedicated thread: connect the data plane, run the engine, report.
/// Progress and tokens go straight to the coordinator (Tell is thread-safe); the outcome comes
/// back to the GpuHost as <see cref="ShardRun.Ended"/>. <see cref="Abort"/> (any thread) cancels and stops
/// the data plane so a rank blocked in a collective (and its peers) stop at once: a TCP mesh is closed; an
/// NCCL communicator is asked to abort, which the shard thread itself carries out (ncclCommAbort) at its
/// next watchdog poll, so the handle is never freed under it. The data plane ends on the shard thread: a
/// warm NCCL ring's communicator is kept after a clean run and aborted and dropped after any other end.
/// </summary>
internal sealed class ShardRun : IShardEvents
{
    /// <summary>Local only (carries the exception object): exempt from serialize-messages checks.</summary>
    public sealed record Ended(string QueryId, ShardOutcome? Outcome, Exception? Error, bool Aborted) : INoSerializationVerificationNeeded;

    private readonly RunShard _work;
    private readonly string _hostId;
    private readonly CancellationTokenSource _cts = new();
    private QueryCollective? _collective;
    private int _chunk;
    private long _layerStarted;

    private ShardRun(RunShard work, string hostId)
    {
        _work = work;
        _hostId = hostId;
    }

    public string QueryId => _work.QueryId;

    public IActorRef Coordinator => _work.Coordinator;

    public int Rank => _work.Ring.Rank;

    public bool Aborted => _cts.IsCancellationRequested;

    /// <summary>The data plane is an NCCL ring (GPU hosts), not the TCP mesh.</summary>
    public bool UsesNccl => CollectiveFactory.UsesNccl(_work.Ring);

    public static ShardRun Start(RunShard work, string hostId, IShardEngine engine, CollectiveFactory collectives, IActorRef host)
    {
        var run = new ShardRun(work, hostId);
        var thread = new Thread(() => host.Tell(run.Execute(engine, collectives)))
        {
            IsBackground = true,
            Name = $"shard {work.QueryId} rank {work.Ring.Rank}",
        };
        thread.Start();
        return run;
    }

    /// <summary>Thread-safe (the host actor calls it): cancel the run and stop its data plane.</summary>
    public void Abort()
    {
        _cts.Cancel();
        Volatile.Read(ref _collective)?.AbortFromAnyThread("the query was cancelled or aborted");
    }

    private Ended Execute(IShardEngine engine, CollectiveFactory collectives)
    {
        QueryCollective? collective = null;
        bool clean = false;
        try
        {
            collective = collectives.Acquire(_work.QueryId, _work.Ring, _cts.Token);
            Volatile.Write(ref _collective, collective);
            if (collective.Ring is { } ring) ApbMetrics.NcclRing(_hostId, ring.Reused);
            if (_cts.IsCancellationRequested) collective.AbortFromAnyThread("the query was cancelled or aborted"); // Abort ran before the write above
            _layerStarted = System.Diagnostics.Stopwatch.GetTimestamp();
            var outcome = engine.Run(_work.Work, collective.Collective, this, _cts.Token);
            clean = !_cts.IsCancellationRequested;
            return new Ended(QueryId, outcome, null, false);
        }
        catch (Exception e)
        {
            return new Ended(QueryId, null, e, Aborted);
        }
        finally
        {
            collective?.End(clean);
            collectives.Forget(QueryId);
        }
    }

    public void LayerDone(int layer, int layers)
    {
        ApbMetrics.PrefillLayer(System.Diagnostics.Stopwatch.GetElapsedTime(_layerStarted).TotalSeconds);
        _layerStarted = System.Diagnostics.Stopwatch.GetTimestamp();
        Coordinator.Tell(new PrefillProgress(QueryId, _hostId, layer, layers));
    }

    public void Token(long id)
    {
        if (_work.Ring.Rank != _work.Ring.WorldSize - 1) return; // the last host streams; the others know the same ids
        Coordinator.Tell(new ShardTokens(QueryId, _chunk++, [(int)id]));
    }

    /// <summary>The report for a failed run: own errors blame this host, data-plane errors the peer.</summary>
    public ShardFailed Failure(Exception error)
    {
        var root = error is AggregateException a ? a.GetBaseException() : error;
        if (root is CollectiveException c)
        {
            string? peer = c.Peer is { } p && p >= 0 && p < _work.Ring.HostIds.Count ? _work.Ring.HostIds[p] : null;
            var reason = peer is null ? c.Message : $"{c.Message} [peer {peer}]";
            return new ShardFailed(QueryId, _hostId, reason, peer, DataPlane: true);
        }
        return new ShardFailed(QueryId, _hostId, $"host {_hostId}: {root.GetType().Name}: {root.Message}", _hostId, DataPlane: false);
    }
}
