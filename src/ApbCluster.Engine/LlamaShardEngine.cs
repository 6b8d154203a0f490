using System.Diagnostics;
using ApbCluster.Contracts;
using ApbCluster.Model.Forward;
using ApbCluster.Model.Layers;
using ApbCluster.NativeInterop.Cuda;
using ApbCluster.Parallel.Collectives;
using ApbCluster.Parallel.Compression;
using ApbCluster.Parallel.Phase2;
using ApbCluster.Parallel.Plan;
using ApbCluster.Parallel.Kernels;
using ApbCluster.Parallel.Serving;
using ApbCluster.Parallel.Strategies;
using TorchSharp;
using ModelGeneration = ApbCluster.Model.Generation;
using static TorchSharp.torch;

namespace ApbCluster.Engine;

/// <summary>
/// The real engine: owns one LlamaModel on its device and runs its rank of a query through
/// <see cref="ParallelRun.Host"/>. Everything the run allocates lives in one dispose scope, so the
/// shard's KV is freed however the run ends (done, failed, cancelled). <see cref="Run"/> is called on several
/// threads at once (one per running query): each call owns its scope, plan, compressor and KV; the weights are only
/// read; the RoPE table is sized once at load for the model's maximum positions (and grows under a lock).
/// </summary>
public sealed class LlamaShardEngine : IShardEngine
{
    private readonly LlamaModel _model;
    private readonly RetainingHeadCompressor? _retainingHeads;
    private readonly string _noHeadsReason = "";
    private readonly TimeSpan _layerDelay;
    private readonly long _kvBudget;
    private readonly long _hostKvBudget;
    private readonly KvLedger _kv = new();
    private readonly DecodeBatcher? _batcher;
    private readonly PrefillGate _gate;

    /// <param name="layerDelay">Test-only: sleep after each prefill layer (makes prefill slow enough to kill a host mid-way).</param>
    /// <param name="kvBudget">Bytes of KV this host may hold (apb.gpu-host.kv-memory); 0: what its device or process has free.</param>
    /// <param name="prefillPolicy">How a new query's prefill shares the host with running decodes (apb.gpu-host.prefill-policy).</param>
    /// <param name="batchDecode">Running queries' Phase-2 steps share each layer's dense parts (apb.gpu-host.batch-decode).</param>
    /// <param name="hostKvBudget">Bytes of ShadowKV values this host may keep in host memory (apb.gpu-host.host-kv-memory);
    /// 0: what the machine has free.</param>
    public LlamaShardEngine(ModelSpec spec, string device, TimeSpan layerDelay = default, long kvBudget = 0,
        PrefillPolicy prefillPolicy = PrefillPolicy.Concurrent, bool batchDecode = false, long hostKvBudget = 0)
    {
        _gate = new PrefillGate(prefillPolicy);
        if (kvBudget < 0) throw new ArgumentOutOfRangeException(nameof(kvBudget), kvBudget, "a KV budget is not negative");
        if (hostKvBudget < 0) throw new ArgumentOutOfRangeException(nameof(hostKvBudget), hostKvBudget, "a host KV budget is not negative");
        _kvBudget = kvBudget;
        _hostKvBudget = hostKvBudget;
        Device = device;
        ModelName = spec.Name;
        _layerDelay = layerDelay;
        _batcher = batchDecode ? new DecodeBatcher() : null;
        _model = spec.Load(new Device(device));
        (_retainingHeads, _noHeadsReason) = LoadRetainingHeads(spec, _model);
    }

    /// <summary>Once per engine, not per query: a checkpoint's trained heads (retaining_heads.safetensors beside
    /// the weights), or seeded random heads for a random model (identical on every host, like its weights).</summary>
    private static (RetainingHeadCompressor? Heads, string Reason) LoadRetainingHeads(ModelSpec spec, LlamaModel model)
    {
        var c = model.Config;
        if (spec.Directory is null)
            return (RetainingHeadCompressor.CreateRandom(c.NumLayers, c.NumHeads * c.HeadDim, c.NumKvHeads * c.HeadDim, c.NumKvHeads,
                spec.Seed, model.Device, model.Dtype), "");
        var file = Path.Combine(spec.Directory, RetainingHeadsFile.DefaultFileName);
        return File.Exists(file)
            ? (RetainingHeadsFile.Load(file, c, model.Device, model.Dtype), "")
            : (null, $"this model has no retaining heads ({file} not found; train them with `apb train retaining-heads`), use the query-aware compressor");
    }

    public string Device { get; }

    public string ModelName { get; }

    public long KvBytes => _kv.DeviceBytes;

    public long HostKvBytes => _kv.HostBytes;

    public LlamaModel Model => _model;

    /// <summary>What cross-query decode batching did on this host (zeros when it is off or only one query ran at a time).</summary>
    public DecodeBatchStats DecodeBatching => _batcher?.Stats ?? default;

    /// <summary>This host's prefill policy and what it has made prefills wait.</summary>
    public PrefillGate Gate => _gate;

    /// <summary>With a KV budget: the KV held against the budget (so the router admits queries by it); otherwise the
    /// device's (or on CPU the process's) memory.</summary>
    public DeviceMemory Memory()
    {
        if (_kvBudget > 0) return new DeviceMemory(KvBytes, _kvBudget);
        if (_model.Device.type != TorchSharp.DeviceType.CUDA) return NoModelEngine.ProcessMemory();
        // The caching allocator's view is what matters for KV headroom on a GPU.
        // Called from the actor thread, so select the device first (cudaMemGetInfo reads the current one).
        CudaRuntime.SetDevice(Math.Max(0, (int)_model.Device.index));
        var (free, total) = CudaRuntime.MemoryInfo();
        return new DeviceMemory((long)(total - free), (long)total);
    }

    /// <summary>With a host KV budget: the values held against it; otherwise the machine's memory.</summary>
    public DeviceMemory HostMemory() => _hostKvBudget > 0 ? new DeviceMemory(HostKvBytes, _hostKvBudget) : HostMemoryInfo.Read();

    /// <summary>The router's resolved prefill attention as the strategies take it (null: full attention).</summary>
    public static CritiPrefillOptions? CritiPrefillOf(PrefillAttentionOptions? p) =>
        p is { Kind: PrefillAttentionKind.CritiPrefill, Budget: { } budget, Segment: { } segment, Block: { } block, Threshold: { } threshold }
            ? new CritiPrefillOptions { Budget = budget, Segment = segment, Block = block, Threshold = threshold }.Validate("criti-")
            : null;

    public ShardOutcome Run(ShardWork work, ICollective collective, IShardEvents events, CancellationToken ct)
    {
        var plan = QueryPlanning.FromShard(work, collective.WorldSize, _model.Config);
        var strategy = ParallelRun.For(plan.Mode, Compressor(work));
        var clock = Stopwatch.StartNew();
        double prefillMs = 0;
        using var turn = _gate.Enter();
        using var held = _kv.Open(); // this query's part of KvBytes and HostKvBytes, which sum every running query's KV
        ApbCluster.Model.KvStores.IKvStore? store = null; // its ShadowKV store, once built
        int tokens = 0;
        var request = new PrefillRequest(work.Document.Select(x => (long)x).ToArray(), work.Question.Select(x => (long)x).ToArray())
        {
            CritiPrefill = CritiPrefillOf(work.PrefillAttention),
            OnLayer = (layer, total) =>
            {
                if (_layerDelay > TimeSpan.Zero) ct.WaitHandle.WaitOne(_layerDelay);
                ct.ThrowIfCancellationRequested();
                events.LayerDone(layer, total);
                if (layer != total)
                {
                    turn.BeforePrefillLayer(ct);
                    return;
                }
                prefillMs = clock.Elapsed.TotalMilliseconds;
                held.Set(ShardBytes(plan, collective.Rank), 0);
            },
        };
        var options = new Phase2Options
        {
            MaxNewTokens = work.Generation.MaxNewTokens,
            Sampling = work.Generation.Temperature > 0 ? SamplerOptions(work.Generation) : null,
            KvStore = KvStoreOf(work, built => Hold(held, store = built)),
            Batcher = _batcher,
            OnToken = id =>
            {
                ct.ThrowIfCancellationRequested();
                if (++tokens == 1 && store is not null) Hold(held, store); // its first step filled the per-step V caches
                events.Token(id);
                turn.Decoded(); // after the token is out: a prefill waiting for this step may then go on
            },
        };
        using var scope = NewDisposeScope(); // frees the shard's KV however the run ends
        try
        {
            turn.BeforePrefillLayer(ct);
            var (shard, result) = ParallelRun.Host(collective, _model, plan, strategy, request, options);
            shard.Dispose();
            return new ShardOutcome(prefillMs > 0 ? prefillMs : clock.Elapsed.TotalMilliseconds, clock.Elapsed.TotalMilliseconds, result.Tokens.Length);
        }
        finally
        {
            if (_model.Device.type == TorchSharp.DeviceType.CUDA) cuda.synchronize(_model.Device); // this host's GPU, not the thread's current one
        }
    }

    /// <summary>The query's decode store (null: the full shard); <paramref name="built"/> sees a ShadowKV store as soon
    /// as it replaced the shard.</summary>
    private static Func<HostShard, LlamaModel, ApbCluster.Model.KvStores.IKvStore>? KvStoreOf(ShardWork work,
        Action<ApbCluster.Model.KvStores.IKvStore> built)
    {
        if (KvStoreFactory.For(ShadowKvWire.FromWire(work.KvStore)) is not { } build) return null;
        return (shard, model) =>
        {
            var store = build(shard, model);
            built(store);
            return store;
        };
    }

    /// <summary>The store's device and host bytes replace the query's share (the full shard it was built from).</summary>
    private static void Hold(KvLedger.Hold held, ApbCluster.Model.KvStores.IKvStore store) => held.Set(store.DeviceBytes, store.HostBytes);

    private ICompressor? Compressor(ShardWork work)
    {
        if (work.Mode != AttentionMode.Apb || work.Plan.PassingLength == 0) return null;
        return CompressorNames.Resolve(work.Compressor) switch
        {
            CompressorKind.QueryAware => new QueryAwareCompressor(),
            CompressorKind.Random => new RandomCompressor(0),
            CompressorKind.RetainingHeads => _retainingHeads ?? throw new ArgumentException(_noHeadsReason),
            var kind => throw new ArgumentException(CompressorNames.Name(kind)),
        };
    }

    private static ModelGeneration.GenerationOptions SamplerOptions(Contracts.GenerationOptions g) =>
        new() { Temperature = g.Temperature, TopP = g.TopP, Seed = g.Seed ?? Random.Shared.NextInt64() };

    /// <summary>K and V of the host's real tokens for every layer (what the shard holds after prefill).</summary>
    private long ShardBytes(ApbPlan plan, int rank)
    {
        var c = _model.Config;
        long tokens = plan.LocalPositions(rank).Count(p => p < plan.DocumentLength);
        return tokens * c.NumLayers * 2L * c.NumKvHeads * c.HeadDim * (_model.Dtype is ScalarType.Float32 ? 4 : _model.Dtype is ScalarType.Float64 ? 8 : 2);
    }

    public void Dispose() => _model.Dispose();
}
