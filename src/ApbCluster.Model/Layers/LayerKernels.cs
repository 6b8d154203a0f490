using ApbCluster.NativeInterop;
using TorchSharp;
using static TorchSharp.torch;

namespace ApbCluster.Model.Layers;

/// <summary>
/// A decoder layer's maths outside the attention, as two TorchScript functions: the input side (RMSNorm, the stacked
/// q/k/v matmul, RoPE on q and k together) and the output side (o_proj, residual, RMSNorm, the stacked gate/up matmul,
/// SiLU, down, residual). Every op is the one Hugging Face runs, in its order and dtypes (RMSNorm in fp32, cast back
/// before the weight). Why a script: a decode step is launch-bound, and each TorchSharp op costs a P/Invoke, a managed
/// tensor and a dispose-scope entry; the script runs the same ops from libtorch's interpreter, one call per side.
/// </summary>
internal static class LayerKernels
{
    private const string Script = """
def rms_norm(x: Tensor, weight: Tensor, eps: float) -> Tensor:
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(x.dtype)

def project(x: Tensor, norm_w: Tensor, eps: float, w_qkv: Tensor, b_qkv: Optional[Tensor], cos: Tensor, signed_sin: Tensor, hq: int, hkv: int) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    b = x.size(0)
    s = x.size(1)
    heads = torch.linear(rms_norm(x, norm_w, eps), w_qkv, b_qkv)
    d = heads.size(2) // (hq + 2 * hkv)
    heads = heads.view(b, s, hq + 2 * hkv, d)
    qk = heads.narrow(2, 0, hq + hkv)
    swapped = qk.view(b, s, hq + hkv, 2, d // 2).flip([3]).view(b, s, hq + hkv, d)
    rotated = qk * cos + swapped * signed_sin
    return heads.narrow(2, 0, hq), heads.narrow(2, hq, hkv), heads.narrow(2, hq + hkv, hkv), rotated.narrow(2, 0, hq), rotated.narrow(2, hq, hkv)

def finish(x: Tensor, attn: Tensor, w_o: Tensor, norm_w: Tensor, eps: float, w_gate_up: Tensor, w_down: Tensor) -> Tensor:
    b = attn.size(0)
    s = attn.size(1)
    h = x + torch.linear(attn.reshape(b, s, -1), w_o)
    gate_up = torch.linear(rms_norm(h, norm_w, eps), w_gate_up)
    inter = gate_up.size(2) // 2
    gate = torch.silu_(gate_up.narrow(2, 0, inter))
    gate.mul_(gate_up.narrow(2, inter, inter))
    return h + torch.linear(gate, w_down)

""";

    private static readonly Lazy<jit.CompilationUnit> Unit = new(() =>
    {
        TorchJit.UsePlainExecutor();
        return jit.compile(Script);
    });

    /// <summary>(q, k, v before RoPE, q, k after) [B, S, H, D], views of the layer's stacked projection.</summary>
    public static (Tensor QPre, Tensor KPre, Tensor VPre, Tensor Q, Tensor K) Project(Tensor x, Tensor normWeight, Scalar eps,
        Tensor qkvWeight, Tensor? qkvBias, RopeAngles angles, Scalar heads, Scalar kvHeads) =>
        ((Tensor, Tensor, Tensor, Tensor, Tensor))Unit.Value.invoke("project", x, normWeight, eps, qkvWeight, qkvBias!, angles.Cos, angles.SignedSin, heads, kvHeads);

    /// <summary>The layer's output [B, S, hidden] from its input and the attention output [B, S, Hq, D].</summary>
    public static Tensor Finish(Tensor x, Tensor attention, Tensor outWeight, Tensor normWeight, Scalar eps, Tensor gateUpWeight, Tensor downWeight) =>
        (Tensor)Unit.Value.invoke("finish", x, attention, outWeight, normWeight, eps, gateUpWeight, downWeight);
}
