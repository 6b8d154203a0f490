using ApbCluster.Model.Config;
using static TorchSharp.torch;

namespace ApbCluster.Model.Tests.Layers;

/// <summary>
/// An independent float64 Llama/Qwen2 forward: explicit matmuls and softmax, plain rotate_half RoPE with
/// llama3 scaling computed from scratch in doubles, no cache, no fused ops. Written from the HF modeling
/// code, not from our layers.
/// </summary>
internal static class ReferenceLlama
{
    public static Tensor Logits(ModelConfig c, Dictionary<string, Tensor> w, long[] tokens)
    {
        Tensor W(string name) => w[name].to(ScalarType.Float64);
        int s = tokens.Length, d = c.HeadDim, hq = c.NumHeads, hkv = c.NumKvHeads;
        var x = W("model.embed_tokens.weight").index_select(0, tensor(tokens));          // [S, hidden]
        var (cos, sin) = CosSin(c, s);                                                   // [S, D]
        var mask = ones(s, s, dtype: ScalarType.Bool).tril();
        for (int i = 0; i < c.NumLayers; i++)
        {
            string p = $"model.layers.{i}.";
            var n = Norm(x, W(p + "input_layernorm.weight"), c.RmsNormEps);
            Tensor Proj(string name) =>
                n.matmul(W(p + $"self_attn.{name}.weight").t()) + (c.AttentionBias ? W(p + $"self_attn.{name}.bias") : 0.0);
            var q = Proj("q_proj").view(s, hq, d).transpose(0, 1);                      // [Hq, S, D]
            var k = Proj("k_proj").view(s, hkv, d).transpose(0, 1);
            var v = Proj("v_proj").view(s, hkv, d).transpose(0, 1);
            q = q * cos + RotateHalf(q) * sin;
            k = k * cos + RotateHalf(k) * sin;
            var heads = new List<Tensor>();
            for (int h = 0; h < hq; h++)
            {
                int kvh = h / (hq / hkv);
                var scores = q[h].matmul(k[kvh].t()) / Math.Sqrt(d);
                scores = scores.masked_fill(mask.logical_not(), double.NegativeInfinity);
                var e = (scores - scores.max(-1, keepdim: true).values).exp();
                heads.Add((e / e.sum(-1, keepdim: true)).matmul(v[kvh]));           // [S, D]
            }
            var attn = stack(heads, 1).reshape(s, hq * d);
            x = x + attn.matmul(W(p + "self_attn.o_proj.weight").t());
            var m = Norm(x, W(p + "post_attention_layernorm.weight"), c.RmsNormEps);
            var gate = m.matmul(W(p + "mlp.gate_proj.weight").t());
            var up = m.matmul(W(p + "mlp.up_proj.weight").t());
            x = x + (gate / (1 + (-gate).exp()) * up).matmul(W(p + "mlp.down_proj.weight").t());
        }
        x = Norm(x, W("model.norm.weight"), c.RmsNormEps);
        var head = c.TieWordEmbeddings ? W("model.embed_tokens.weight") : W("lm_head.weight");
        return x.matmul(head.t());                                                      // [S, vocab]
    }

    private static Tensor Norm(Tensor x, Tensor weight, double eps) =>
        weight * (x / (x.pow(2).mean([-1], keepdim: true) + eps).sqrt());

    private static Tensor RotateHalf(Tensor x)
    {
        long half = x.shape[^1] / 2;
        return cat([-x[.., .., (int)half..], x[.., .., ..(int)half]], -1);
    }

    /// <summary>cos/sin [S, D] from scratch: inv_freq per the Llama 3.1 scaling rule, evaluated in doubles.</summary>
    private static (Tensor Cos, Tensor Sin) CosSin(ModelConfig c, int s)
    {
        int half = c.HeadDim / 2;
        var invFreq = new double[half];
        for (int i = 0; i < half; i++)
        {
            double f = 1.0 / Math.Pow(c.RopeTheta, 2.0 * i / c.HeadDim);
            if (c.RopeScaling is { } r)
            {
                double wavelen = 2 * Math.PI / f;
                double lowWavelen = r.OriginalMaxPositionEmbeddings / r.LowFreqFactor;
                double highWavelen = r.OriginalMaxPositionEmbeddings / r.HighFreqFactor;
                if (wavelen > lowWavelen) f /= r.Factor;                        // long wavelengths: slowed
                else if (wavelen >= highWavelen)                                // band: interpolated
                {
                    double smooth = (r.OriginalMaxPositionEmbeddings / wavelen - r.LowFreqFactor) / (r.HighFreqFactor - r.LowFreqFactor);
                    f = (1 - smooth) * f / r.Factor + smooth * f;
                }
            }
            invFreq[i] = f;
        }
        var angles = new double[s, c.HeadDim];
        for (int t = 0; t < s; t++)
            for (int i = 0; i < c.HeadDim; i++) angles[t, i] = t * invFreq[i % half];
        var a = tensor(angles);
        return (a.cos(), a.sin());
    }
}
