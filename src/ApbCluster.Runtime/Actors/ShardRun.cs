using Akka.Actor;
using ApbCluster.Contracts;
using ApbCluster.NativeInterop;
using ApbCluster.Parallel.Collectives;
using ApbCluster.Runtime.DataPlane;
using ApbCluster.Runtime.Engine;
using ApbCluster.Runtime.Metrics;

namespace ApbCluster.Runtime.Actors;

/// <summary>
/// One rank of one query on a dedicated thread: connect the data plane, run the engine, report.
/// Progress and tokens go straight to the coordinator (Tell is thread-safe); the outcome comes
/// back to the GpuHost as <see cref="ShardRun.Ended"/>. <see cref="Abort"/> cancels and closes the
/// data plane so a rank blocked in a collective (and its peers) stop at once.
/// </summary>
internal sealed class ShardRun : IShardEvents
{
    /// <summary>Local only (carries the exception object): exempt from serialize-messages checks.</summary>
    public sealed record Ended(string QueryId, ShardOutcome? Outcome, Exception? Error, bool Aborted) : INoSerializationVerificationNeeded;

    private readonly RunShard _work;
    private readonly string _hostId;
    private readonly CancellationTokenSource _cts = new();
    private ICollective? _collective;
    private int _chunk;
    private long _layerStarted;

    private ShardRun(RunShard work, string hostId)
    {
        _work = work;
        _hostId = hostId;
    }

    public string QueryId => _work.QueryId;

    public IActorRef Coordinator => _work.Coordinator;

    public int Rank => _work.Rank;

    public bool Aborted => _cts.IsCancellationRequested;

    /// <summary>The data plane is an NCCL communicator (GPU hosts), not the TCP mesh.</summary>
    public bool UsesNccl => _work.NcclUniqueId is not null;

    public static ShardRun Start(RunShard work, string hostId, IShardEngine engine, CollectiveFactory collectives, IActorRef host)
    {
        var run = new ShardRun(work, hostId);
        var thread = new Thread(() => host.Tell(run.Execute(engine, collectives)))
        {
            IsBackground = true,
            Name = $"shard {work.QueryId} rank {work.Rank}",
        };
        thread.Start();
        return run;
    }

    public void Abort()
    {
        _cts.Cancel();
        Volatile.Read(ref _collective)?.Dispose();
    }

    private Ended Execute(IShardEngine engine, CollectiveFactory collectives)
    {
        try
        {
            var collective = collectives.CreateAsync(_work, _cts.Token).GetAwaiter().GetResult();
            Volatile.Write(ref _collective, collective);
            if (_cts.IsCancellationRequested) collective.Dispose();
            using (collective)
            {
                _layerStarted = System.Diagnostics.Stopwatch.GetTimestamp();
                var outcome = engine.Run(_work, collective, this, _cts.Token);
                return new Ended(QueryId, outcome, null, false);
            }
        }
        catch (Exception e)
        {
            return new Ended(QueryId, null, e, Aborted);
        }
        finally
        {
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
        if (_work.Rank != _work.WorldSize - 1) return; // the last host streams; the others know the same ids
        Coordinator.Tell(new ShardTokens(QueryId, _chunk++, [(int)id]));
    }

    /// <summary>The report for a failed run: own errors blame this host, data-plane errors the peer.</summary>
    public ShardFailed Failure(Exception error)
    {
        var root = error is AggregateException a ? a.GetBaseException() : error;
        if (root is CollectiveException c)
        {
            string? peer = c.Peer is { } p && p >= 0 && p < _work.HostIds.Count ? _work.HostIds[p] : null;
            var reason = peer is null ? c.Message : $"{c.Message} [peer {peer}]";
            return new ShardFailed(QueryId, _hostId, reason, peer, DataPlane: true);
        }
        return new ShardFailed(QueryId, _hostId, $"host {_hostId}: {root.GetType().Name}: {root.Message}", _hostId, DataPlane: false);
    }
}
