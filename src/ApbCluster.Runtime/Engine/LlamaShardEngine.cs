using System.Diagnostics;
using ApbCluster.Contracts;
using ApbCluster.Model.Layers;
using ApbCluster.NativeInterop.Cuda;
using ApbCluster.Parallel.Collectives;
using ApbCluster.Parallel.Compression;
using ApbCluster.Parallel.Phase2;
using ApbCluster.Parallel.Plan;
using ApbCluster.Parallel.Kernels;
using ApbCluster.Parallel.Strategies;
using TorchSharp;
using ModelGeneration = ApbCluster.Model.Generation;
using static TorchSharp.torch;

namespace ApbCluster.Runtime.Engine;

/// <summary>
/// The real engine: owns one LlamaModel on its device and runs its rank of a query through
/// <see cref="ParallelRun.Host"/>. Everything the run allocates lives in one dispose scope, so the
/// shard's KV is freed however the run ends (done, failed, cancelled).
/// </summary>
public sealed class LlamaShardEngine : IShardEngine
{
    private readonly LlamaModel _model;
    private readonly RetainingHeadCompressor? _retainingHeads;
    private readonly string _noHeadsReason = "";
    private readonly TimeSpan _layerDelay;
    private long _kvBytes;

    /// <param name="layerDelay">Test-only: sleep after each prefill layer (makes prefill slow enough to kill a host mid-way).</param>
    public LlamaShardEngine(ModelSpec spec, string device, TimeSpan layerDelay = default)
    {
        Device = device;
        ModelName = spec.Name;
        _layerDelay = layerDelay;
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

    public long KvBytes => Interlocked.Read(ref _kvBytes);

    public LlamaModel Model => _model;

    public DeviceMemory Memory()
    {
        if (_model.Device.type != TorchSharp.DeviceType.CUDA) return NoModelEngine.ProcessMemory();
        // The caching allocator's view is what matters for KV headroom on a GPU.
        // Called from the actor thread, so select the device first (cudaMemGetInfo reads the current one).
        CudaRuntime.SetDevice(Math.Max(0, (int)_model.Device.index));
        var (free, total) = CudaRuntime.MemoryInfo();
        return new DeviceMemory((long)(total - free), (long)total);
    }

    /// <summary>The router's resolved prefill attention as the strategies take it (null: full attention).</summary>
    public static CritiPrefillOptions? CritiPrefillOf(PrefillAttentionOptions? p) =>
        p is { Kind: PrefillAttentionKind.CritiPrefill, Budget: { } budget, Segment: { } segment, Block: { } block, Threshold: { } threshold }
            ? new CritiPrefillOptions { Budget = budget, Segment = segment, Block = block, Threshold = threshold }.Validate("criti-")
            : null;

    public ShardOutcome Run(RunShard work, ICollective collective, IShardEvents events, CancellationToken ct)
    {
        var plan = QueryPlanning.FromShard(work, _model.Config);
        var strategy = ParallelRun.For(plan.Mode, Compressor(work));
        var clock = Stopwatch.StartNew();
        double prefillMs = 0;
        var request = new PrefillRequest(work.Document.Select(x => (long)x).ToArray(), work.Question.Select(x => (long)x).ToArray())
        {
            CritiPrefill = CritiPrefillOf(work.PrefillAttention),
            OnLayer = (layer, total) =>
            {
                if (_layerDelay > TimeSpan.Zero) ct.WaitHandle.WaitOne(_layerDelay);
                ct.ThrowIfCancellationRequested();
                events.LayerDone(layer, total);
                if (layer != total) return;
                prefillMs = clock.Elapsed.TotalMilliseconds;
                Interlocked.Exchange(ref _kvBytes, ShardBytes(plan, collective.Rank));
            },
        };
        var options = new Phase2Options
        {
            MaxNewTokens = work.Generation.MaxNewTokens,
            Sampling = work.Generation.Temperature > 0 ? SamplerOptions(work.Generation) : null,
            KvStore = KvStoreOf(work),
            OnToken = id =>
            {
                ct.ThrowIfCancellationRequested();
                events.Token(id);
            },
        };
        using var scope = NewDisposeScope(); // frees the shard's KV however the run ends
        try
        {
            var (shard, result) = ParallelRun.Host(collective, _model, plan, strategy, request, options);
            shard.Dispose();
            return new ShardOutcome(prefillMs > 0 ? prefillMs : clock.Elapsed.TotalMilliseconds, clock.Elapsed.TotalMilliseconds, result.Tokens.Length);
        }
        finally
        {
            Interlocked.Exchange(ref _kvBytes, 0);
            if (_model.Device.type == TorchSharp.DeviceType.CUDA) cuda.synchronize(_model.Device); // this host's GPU, not the thread's current one
        }
    }

    /// <summary>The query's decode store; a ShadowKV store reports what it keeps instead of the shard's full K/V.</summary>
    private Func<HostShard, LlamaModel, ApbCluster.Model.KvStores.IKvStore>? KvStoreOf(RunShard work)
    {
        if (KvStoreFactory.For(ShadowKvWire.FromWire(work.KvStore)) is not { } build) return null;
        return (shard, model) =>
        {
            var store = build(shard, model);
            Interlocked.Exchange(ref _kvBytes, store.DeviceBytes);
            return store;
        };
    }

    private ICompressor? Compressor(RunShard work)
    {
        if (work.Mode != AttentionMode.Apb || work.Plan.PassingLength == 0) return null;
        var name = string.IsNullOrEmpty(work.Compressor) ? QueryPlanning.DefaultCompressor : work.Compressor;
        return name switch
        {
            "query-aware" => new QueryAwareCompressor(),
            "random" => new RandomCompressor(0),
            "retaining-heads" => _retainingHeads ?? throw new ArgumentException(_noHeadsReason),
            _ => throw new ArgumentException($"unknown compressor '{name}' (known: query-aware, random, retaining-heads)"),
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
