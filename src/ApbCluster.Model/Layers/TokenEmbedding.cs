using TorchSharp;
using static TorchSharp.torch;

namespace ApbCluster.Model.Layers;

/// <summary>Token embedding table "weight" [vocab, hidden]; also the lm_head when embeddings are tied.</summary>
public sealed class TokenEmbedding : nn.Module
{
#pragma warning disable IDE1006
    private readonly TorchSharp.Modules.Parameter weight;
#pragma warning restore IDE1006

    public TokenEmbedding(IWeightSource w, string prefix, long vocab, long hidden, ScalarType dtype, Device device) : base(prefix)
    {
        weight = Weights.Load(w, prefix + ".weight", [vocab, hidden], dtype, device);
        RegisterComponents();
    }

    public Tensor Weight => weight;

    /// <summary>[B, S] int64 -> [B, S, hidden].</summary>
    public Tensor Forward(Tensor tokenIds) =>
        weight.index_select(0, tokenIds.reshape(-1)).view(tokenIds.shape[0], tokenIds.shape[1], weight.shape[1]);
}
