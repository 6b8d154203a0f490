using ApbCluster.Model.Config;
using static TorchSharp.torch;

namespace ApbCluster.Model.Layers;

/// <summary>
/// Rotary position embedding in HF's rotate_half convention (first half / second half of each head).
/// inv_freq follows HF's _compute_default_rope_parameters, with Llama 3.1's "llama3" scaling from
/// _compute_llama3_parameters. cos/sin are computed in fp32 (as HF does per forward), cast to the model
/// dtype, and kept in a table indexed by position, so a decode step costs two gathers instead of
/// recomputing them in every layer.
/// </summary>
public sealed class RotaryEmbedding : IDisposable
{
    private readonly Device _device;
    private readonly ScalarType _dtype;
    private Tensor _cos, _sin; // [capacity, D]

    public RotaryEmbedding(ModelConfig config, Device device, ScalarType dtype)
    {
        HeadDim = config.HeadDim;
        _device = device;
        _dtype = dtype;
        InvFreq = ComputeInvFreq(config).to(device);
        InvFreq.DetachFromDisposeScope();
        (_cos, _sin) = BuildTables(Math.Max(config.MaxPositionEmbeddings, 1));
    }

    public int HeadDim { get; }

    /// <summary>inv_freq [D/2] in fp32 (after rope scaling).</summary>
    public Tensor InvFreq { get; }

    /// <summary>Positions below this are in the cos/sin table.</summary>
    public long Capacity => _cos.shape[0];

    /// <summary>Grows the table (doubling) so positions below <paramref name="positions"/> can be applied.
    /// Host-side knowledge only: callers pass the largest position + 1 they are about to use.</summary>
    public void EnsureCapacity(long positions)
    {
        if (positions <= Capacity) return;
        long capacity = Capacity;
        while (capacity < positions) capacity *= 2;
        _cos.Dispose();
        _sin.Dispose();
        (_cos, _sin) = BuildTables(capacity);
    }

    /// <summary>Rotates x [B, S, H, D] by its positions ([S] or [B, S], int64, global positions, below Capacity).</summary>
    public Tensor Apply(Tensor x, Tensor positions)
    {
        var (cos, sin) = CosSin(positions, x.dtype);
        return TorchConstants.Plus(x * cos, RotateHalf(x) * sin);
    }

    /// <summary>cos and sin for the positions, shaped to broadcast over [B, S, H, D].</summary>
    public (Tensor Cos, Tensor Sin) CosSin(Tensor positions, ScalarType dtype)
    {
        var flat = positions.reshape(-1);
        var shape = positions.dim() == 1
            ? new long[] { 1, positions.shape[0], 1, HeadDim }
            : new long[] { positions.shape[0], positions.shape[1], 1, HeadDim };
        var cos = _cos.index_select(0, flat).view(shape);
        var sin = _sin.index_select(0, flat).view(shape);
        return dtype == _dtype ? (cos, sin) : (cos.to(dtype), sin.to(dtype));
    }

    /// <summary>cos, sin and the signed sin (-sin on the first half, +sin on the second) for the positions, shaped to
    /// broadcast over [B, S, H, D]: what <see cref="Rotate"/> takes, gathered once per forward.</summary>
    public RopeAngles Angles(Tensor positions, ScalarType dtype)
    {
        var (cos, sin) = CosSin(positions, dtype);
        long half = HeadDim / 2;
        return new RopeAngles(cos, sin, cat([sin.narrow(-1, 0, half).neg(), sin.narrow(-1, half, half)], -1));
    }

    /// <summary>
    /// x * cos + rotate_half(x) * sin, HF's rotation, with rotate_half(x) * sin computed as swap_halves(x) * signed sin
    /// (cat(-x2, x1) * sin = cat(x2, x1) * cat(-sin1, sin2), the same products): one flip instead of two slices, a
    /// negation and a cat. x [B, S, H, D] may have strided rows (the heads of a fused projection).
    /// </summary>
    public static Tensor Rotate(Tensor x, RopeAngles angles)
    {
        long b = x.shape[0], s = x.shape[1], h = x.shape[2], d = x.shape[3];
        var swapped = x.view(b, s, h, 2, d / 2).flip(3).view(b, s, h, d);
        return TorchConstants.Plus(x * angles.Cos, swapped * angles.SignedSin);
    }

    private static Tensor RotateHalf(Tensor x)
    {
        long half = x.shape[^1] / 2;
        var x1 = x.narrow(-1, 0, half);
        var x2 = x.narrow(-1, half, half);
        return cat([x2.neg(), x1], -1);
    }

    private (Tensor Cos, Tensor Sin) BuildTables(long capacity)
    {
        using var scope = NewDisposeScope();
        var t = arange(capacity, dtype: ScalarType.Float32, device: _device);
        var freqs = outer(t, InvFreq);              // fp32 [capacity, D/2]
        var emb = cat([freqs, freqs], -1);          // [capacity, D]
        var cos = emb.cos().to(_dtype).MoveToOuterDisposeScope();
        var sin = emb.sin().to(_dtype).MoveToOuterDisposeScope();
        cos.DetachFromDisposeScope();
        sin.DetachFromDisposeScope();
        return (cos, sin);
    }

    /// <summary>inv_freq on the CPU in fp32, as HF computes it.</summary>
    public static Tensor ComputeInvFreq(ModelConfig config)
    {
        using var scope = NewDisposeScope();
        int d = config.HeadDim;
        var exponents = arange(0, d, 2, dtype: ScalarType.Int64).to(ScalarType.Float32) / d;
        var invFreq = 1.0 / pow(config.RopeTheta, exponents);
        var s = config.RopeScaling;
        if (s != null)
        {
            if (!string.Equals(s.RopeType, "llama3", StringComparison.Ordinal))
                throw new NotSupportedException($"rope_scaling type '{s.RopeType}' is not supported (only 'llama3').");
            invFreq = Llama3Scale(invFreq, s);
        }
        return invFreq.to(ScalarType.Float32).MoveToOuterDisposeScope();
    }

    /// <summary>HF's _compute_llama3_parameters: long wavelengths slowed by factor, short ones kept,
    /// the band between smoothly interpolated.</summary>
    private static Tensor Llama3Scale(Tensor invFreq, RopeScaling s)
    {
        double oldContext = s.OriginalMaxPositionEmbeddings;
        double lowFreqWavelen = oldContext / s.LowFreqFactor;
        double highFreqWavelen = oldContext / s.HighFreqFactor;
        var wavelen = 2 * Math.PI / invFreq;
        var llama = where(wavelen > lowFreqWavelen, invFreq / s.Factor, invFreq);
        var smooth = (oldContext / wavelen - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor);
        var smoothed = (1 - smooth) * llama / s.Factor + smooth * llama;
        var isMedium = (wavelen < highFreqWavelen).logical_not().logical_and((wavelen > lowFreqWavelen).logical_not());
        return where(isMedium, smoothed, llama);
    }

    public void Dispose()
    {
        _cos.Dispose();
        _sin.Dispose();
        InvFreq.Dispose();
    }
}

/// <summary>Rotary angles for a forward's rows (<see cref="RotaryEmbedding.Angles"/>).</summary>
public sealed record RopeAngles(Tensor Cos, Tensor Sin, Tensor SignedSin);
