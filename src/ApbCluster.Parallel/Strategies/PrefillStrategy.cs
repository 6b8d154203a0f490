using ApbCluster.Model.Forward;
using ApbCluster.Model.Layers;
using ApbCluster.Parallel.Collectives;
using ApbCluster.Parallel.Kernels;
using ApbCluster.Parallel.Plan;
using static TorchSharp.torch;

namespace ApbCluster.Parallel.Strategies;

/// <summary>Everything one host's attention step may need for one layer.</summary>
public sealed record LayerContext(ICollective Collective, LlamaModel Model, ApbPlan Plan, PrefillRequest Request,
    HostRows Rows, Tensor Positions, PhaseTimer Timer, CritiPrefillState? Criti = null)
{
    public int Host => Collective.Rank;

    /// <summary>
    /// CritiPrefill's choice of blocks for causal rows q, k [1, rows, H, D] whose first row sits at global position
    /// <paramref name="startPosition"/> (timed as its own phase); null when the prefill attends in full.
    /// </summary>
    public CritiPrefillSelection? SelectCritical(int layer, Tensor q, Tensor k, long startPosition)
    {
        if (Criti is null) return null;
        using var _ = Timer.Measure(PhaseTimer.Criticality);
        var layout = CritiPrefillLayout.For((int)q.shape[1], startPosition, Criti.Options);
        return CritiPrefillCriticality.Select(q, k, layout, Criti, layer);
    }
}

/// <summary>
/// The engine every strategy shares (Phase 1): embed the host's rows, run the model's layers with the strategy's
/// attention as the backend (<see cref="LlamaModel.RunLayers"/>), keep the local real tokens' K and V as the host's shard.
/// Strategies differ only in their rows and their attention.
/// </summary>
public abstract class PrefillStrategy
{
    public abstract ParallelMode Mode { get; }

    /// <summary>Whether this strategy can prune its causal part with CritiPrefill (<see cref="PrefillRequest.CritiPrefill"/>).</summary>
    public virtual bool SupportsCritiPrefill => false;

    public HostShard Prefill(ICollective c, LlamaModel model, ApbPlan plan, PrefillRequest request, PhaseTimer? timer = null)
    {
        if (plan.Mode != Mode) throw new ArgumentException($"{GetType().Name} runs {Mode} plans, not {plan.Mode}.");
        if (plan.Hosts != c.WorldSize) throw new ArgumentException($"the plan has {plan.Hosts} hosts, the collective {c.WorldSize}.");
        timer ??= PhaseTimer.Disabled;
        if (request.CritiPrefill is { } criti)
        {
            if (!SupportsCritiPrefill) throw new ArgumentException($"CritiPrefill runs with dense, apb and star prefill, not {Mode.ToString().ToLowerInvariant()}.");
            criti.Validate();
        }
        using var noGrad = no_grad();
        using var critiState = request.CritiPrefill is { } o ? new CritiPrefillState(o) : null;
        var rows = Rows(c.Rank, plan, request);
        var device = model.Device;
        lock (model.Rope) model.Rope.EnsureCapacity(plan.PaddedLength + plan.QuestionLength + 1);

        using var scope = NewDisposeScope();
        var positions = tensor(rows.Positions, dtype: ScalarType.Int64).to(device);
        var ctx = new LayerContext(c, model, plan, request, rows, positions, timer, critiState);
        var h = model.Embed(tensor(rows.Ids, dtype: ScalarType.Int64).reshape(1, -1).to(device));
        var angles = model.Rope.Angles(positions, h.dtype); // once for all layers
        var keep = KeptRows(rows, plan.DocumentLength, device);
        int layers = model.Layers.Count;
        var keys = new Tensor[layers];
        var values = new Tensor[layers];
        var attention = new HostAttention(this, ctx, (layer, p) =>
        {
            // Moved out of the layer's scope: the shard outlives the layer (the compressed blocks, passing block
            // and partial results die with it).
            keys[layer] = Keep(p.K, keep, rows).MoveToOuterDisposeScope();
            values[layer] = Keep(p.V, keep, rows).MoveToOuterDisposeScope();
        });
        h = model.RunLayers(h, angles, attention, timer, request.OnLayer);
        // Out of the prefill's scope to the caller: the shard.
        foreach (var t in keys.Concat(values)) t.MoveToOuterDisposeScope();
        var hidden = request.KeepHidden ? Keep(h, keep, rows).MoveToOuterDisposeScope() : null;
        var kept = rows.Positions.Skip(rows.Prefix).Where(x => x < plan.DocumentLength).ToArray();
        return new HostShard { Host = c.Rank, Positions = kept, Keys = keys, Values = values, Hidden = hidden, Timings = timer };
    }

    /// <summary>The strategy's attention as the model's backend; it also hands each layer's K and V to the shard.</summary>
    private sealed class HostAttention(PrefillStrategy strategy, LayerContext ctx, Action<int, QkvProjection> keep) : IAttentionBackend
    {
        public Tensor Attend(int layer, Tensor hidden, QkvProjection p)
        {
            var attn = strategy.Attend(ctx, layer, hidden, p);
            keep(layer, p);
            return attn;
        }
    }

    /// <summary>The host's rows; by default its local block (ring: its two zigzag chunks).</summary>
    protected virtual HostRows Rows(int host, ApbPlan plan, PrefillRequest request) =>
        new(plan.LocalTokens(host, request.Document, request.PadId), plan.LocalPositions(host), 0);

    /// <summary>Attention output [B, rows, Hq, D] for this host's rows at layer <paramref name="layer"/>.</summary>
    protected abstract Tensor Attend(LayerContext ctx, int layer, Tensor hidden, QkvProjection p);

    /// <summary>Indices of the local real (non-padding) rows, or null when they are all the local rows.</summary>
    private static Tensor? KeptRows(HostRows rows, int documentLength, Device device)
    {
        var idx = Enumerable.Range(rows.Prefix, rows.Local).Where(r => rows.Positions[r] < documentLength).Select(r => (long)r).ToArray();
        return idx.Length == rows.Local ? null : tensor(idx, dtype: ScalarType.Int64).to(device);
    }

    /// <summary>The shard's rows of x as a tensor of their own: x is a view into the layer's fused projection (or the
    /// anchor's rows come first), and keeping a view would keep all of that memory.</summary>
    private static Tensor Keep(Tensor x, Tensor? keep, HostRows rows)
    {
        if (keep is not null) return x.index_select(1, keep);
        return (rows.Prefix == 0 ? x : x.narrow(1, rows.Prefix, rows.Local)).contiguous();
    }
}
