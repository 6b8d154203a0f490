using ApbCluster.Model.Config;
using ApbCluster.Model.Layers;
using static TorchSharp.torch;

namespace ApbCluster.Parallel.Tests.Reference;

/// <summary>One layer's projections for a row set, float64: [S, heads, D]. Q and K are rotated; V never is.</summary>
internal sealed record Qkv64(Tensor QPre, Tensor KPre, Tensor V, Tensor Q, Tensor K);

/// <summary>
/// A float64 Llama written from the Hugging Face modeling code, not from our layers: the model's weights
/// copied to doubles, and the layer cut into pieces (project, attend under an explicit boolean mask, finish)
/// so references can place any rows at any positions and attend them to any keys. Plain matmuls and
/// softmax, RoPE from scratch in doubles (default rotary; no scaling: the tiny test models have none).
/// </summary>
internal sealed class Fp64Llama
{
    private readonly Dictionary<string, Tensor> _w;
    private readonly double[] _invFreq;

    public Fp64Llama(LlamaModel model)
    {
        Config = model.Config;
        if (Config.RopeScaling is not null) throw new NotSupportedException("the fp64 reference implements plain RoPE only");
        if (Config.AttentionBias) throw new NotSupportedException("the fp64 reference has no attention bias");
        _w = model.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().to(ScalarType.Float64, CPU).clone());
        int half = Config.HeadDim / 2;
        _invFreq = Enumerable.Range(0, half).Select(i => 1.0 / Math.Pow(Config.RopeTheta, 2.0 * i / Config.HeadDim)).ToArray();
    }

    public ModelConfig Config { get; }
    public int Layers => Config.NumLayers;

    private Tensor W(string name) => _w[name];

    /// <summary>Token embeddings [S, hidden].</summary>
    public Tensor Embed(IReadOnlyList<long> ids) => W("model.embed_tokens.weight").index_select(0, tensor(ids.ToArray()));

    /// <summary>Input RMSNorm, q/k/v projections, RoPE at <paramref name="positions"/>.</summary>
    public Qkv64 Project(int layer, Tensor x, IReadOnlyList<long> positions)
    {
        string p = $"model.layers.{layer}.";
        var n = Norm(x, W(p + "input_layernorm.weight"));
        long s = x.shape[0];
        var q = n.matmul(W(p + "self_attn.q_proj.weight").t()).view(s, Config.NumHeads, Config.HeadDim);
        var k = n.matmul(W(p + "self_attn.k_proj.weight").t()).view(s, Config.NumKvHeads, Config.HeadDim);
        var v = n.matmul(W(p + "self_attn.v_proj.weight").t()).view(s, Config.NumKvHeads, Config.HeadDim);
        return new Qkv64(q, k, v, Rope(q, positions), Rope(k, positions));
    }

    /// <summary>
    /// Attention of q [Sq, Hq, D] over k, v [Sk, Hkv, D] where visible[i, j] says whether row i sees key j;
    /// query head h reads KV head h / (Hq / Hkv). Returns [Sq, Hq, D].
    /// </summary>
    public Tensor Attend(Tensor q, Tensor k, Tensor v, bool[,] visible)
    {
        int sq = visible.GetLength(0), sk = visible.GetLength(1), group = Config.NumHeads / Config.NumKvHeads;
        if (q.shape[0] != sq || k.shape[0] != sk) throw new ArgumentException("mask shape differs from q/k rows");
        var flat = new bool[sq * sk];
        for (int i = 0; i < sq; i++)
            for (int j = 0; j < sk; j++) flat[i * sk + j] = visible[i, j];
        var hidden = tensor(flat).reshape(sq, sk).logical_not();
        var heads = new Tensor[Config.NumHeads];
        for (int h = 0; h < Config.NumHeads; h++)
        {
            var kv = h / group;
            var scores = q.select(1, h).matmul(k.select(1, kv).t()) / Math.Sqrt(Config.HeadDim);
            scores = scores.masked_fill(hidden, double.NegativeInfinity);
            var e = (scores - scores.max(-1, keepdim: true).values).exp();
            heads[h] = (e / e.sum(-1, keepdim: true)).matmul(v.select(1, kv));
        }
        return stack(heads, 1);
    }

    /// <summary>o_proj + residual, post-attention RMSNorm, SiLU-gated MLP + residual.</summary>
    public Tensor Finish(int layer, Tensor x, Tensor attention)
    {
        string p = $"model.layers.{layer}.";
        var h = x + attention.reshape(x.shape[0], -1).matmul(W(p + "self_attn.o_proj.weight").t());
        var m = Norm(h, W(p + "post_attention_layernorm.weight"));
        var gate = m.matmul(W(p + "mlp.gate_proj.weight").t());
        var up = m.matmul(W(p + "mlp.up_proj.weight").t());
        return h + (gate / (1 + (-gate).exp()) * up).matmul(W(p + "mlp.down_proj.weight").t());
    }

    /// <summary>Final norm and LM head: logits [S, vocab].</summary>
    public Tensor Logits(Tensor x)
    {
        var head = Config.TieWordEmbeddings ? W("model.embed_tokens.weight") : W("lm_head.weight");
        return Norm(x, W("model.norm.weight")).matmul(head.t());
    }

    private Tensor Norm(Tensor x, Tensor weight) => weight * (x / (x.pow(2).mean([-1], keepdim: true) + Config.RmsNormEps).sqrt());

    /// <summary>rotate_half RoPE: pairs (i, i + D/2) turn by position * inv_freq[i].</summary>
    private Tensor Rope(Tensor x, IReadOnlyList<long> positions)
    {
        int d = Config.HeadDim, half = d / 2, s = positions.Count;
        var cos = new double[s * d];
        var sin = new double[s * d];
        for (int t = 0; t < s; t++)
            for (int i = 0; i < d; i++)
            {
                double angle = positions[t] * _invFreq[i % half];
                cos[t * d + i] = Math.Cos(angle);
                sin[t * d + i] = Math.Sin(angle);
            }
        var c = tensor(cos).view(s, 1, d);
        var sn = tensor(sin).view(s, 1, d);
        var rotated = cat([x.narrow(-1, half, half).neg(), x.narrow(-1, 0, half)], -1);
        return x * c + rotated * sn;
    }
}
