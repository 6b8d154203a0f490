using ApbCluster.Model.Layers;
using static TorchSharp.torch;

namespace ApbCluster.Model.Forward;

/// <summary>
/// Who runs a layer's dense parts (input norm, q/k/v projection and RoPE; o-projection, MLP and residuals) inside
/// <see cref="LlamaModel.RunLayers"/>. Without one the sequence runs them itself; a <see cref="DecodeBatcher"/> seat
/// runs them together with other sequences' rows on the same device. The attention stays with the backend either way.
/// </summary>
public interface ILayerRunner
{
    /// <summary>What <see cref="DecoderLayer.Project(Tensor, RopeAngles)"/> returns for these rows.</summary>
    QkvProjection Project(DecoderLayer layer, Tensor hidden, RopeAngles angles);

    /// <summary>What <see cref="DecoderLayer.Finish"/> returns for these rows.</summary>
    Tensor Finish(DecoderLayer layer, Tensor hidden, Tensor attentionOut);
}
