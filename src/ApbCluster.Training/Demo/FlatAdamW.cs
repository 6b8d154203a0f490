using ApbCluster.Model;
using static TorchSharp.torch;

namespace ApbCluster.Training.Demo;

/// <summary>
/// AdamW (PyTorch's algorithm: decoupled weight decay, bias-corrected moments) over one flat parameter, with a
/// per-element weight-decay mask. About ten kernels a step whatever the number of weights, and every hyperparameter
/// goes in as a 0-dim tensor, so no implicit TorchSharp Scalar is created (<see cref="TorchConstants"/>).
/// </summary>
public sealed class FlatAdamW : IDisposable
{
    private readonly Tensor _param, _decayMask, _m, _v;
    private readonly double _beta1, _beta2, _eps, _weightDecay;
    private long _step;

    /// <param name="decayMask">1 where weight decay applies, 0 elsewhere (same shape as the parameter).</param>
    public FlatAdamW(Tensor param, Tensor decayMask, double beta1, double beta2, double eps, double weightDecay)
    {
        if (!decayMask.shape.SequenceEqual(param.shape)) throw new ArgumentException("the decay mask must have the parameter's shape.");
        _param = param;
        _decayMask = decayMask;
        _m = zeros_like(param).DetachFromDisposeScope();
        _v = zeros_like(param).DetachFromDisposeScope();
        (_beta1, _beta2, _eps, _weightDecay) = (beta1, beta2, eps, weightDecay);
    }

    public long Steps => _step;

    /// <summary>One update with learning rate <paramref name="lr"/> from the parameter's gradient (skipped without one).</summary>
    public void Step(double lr)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        if (_param.grad is not { } g) return;
        _step++;
        var dev = _param.device;
        Tensor T(double x) => tensor(x, dtype: ScalarType.Float32, device: dev);
        double bc1 = 1 - Math.Pow(_beta1, _step), bc2 = 1 - Math.Pow(_beta2, _step);
        // p *= 1 - lr * wd (where the mask is 1)
        _param.mul_(_decayMask.mul(T(-lr * _weightDecay)).add_(T(1), TorchConstants.One));
        _m.lerp_(g, T(1 - _beta1));
        _v.lerp_(g.mul(g), T(1 - _beta2));
        var denom = _v.sqrt().mul_(T(1 / Math.Sqrt(bc2))).add_(T(_eps), TorchConstants.One);
        _param.sub_(_m.div(denom).mul_(T(lr / bc1)));
    }

    /// <summary>Zeroes the parameter's gradient.</summary>
    public void ZeroGrad()
    {
        using var noGrad = no_grad();
        _param.grad?.zero_();
    }

    public void Dispose()
    {
        _m.Dispose();
        _v.Dispose();
    }
}
