using System.Collections.Concurrent;
using ApbCluster.Parallel.Compression;
using static TorchSharp.torch;

namespace ApbCluster.Parallel.Tests.Reference;

/// <summary>
/// Passes a real compressor through unchanged and keeps a copy of every score tensor it returns, by
/// (layer, host): the reference checks the engine's scores against its own and, where pooled scores tie
/// exactly at the top-l_p boundary, learns which of the equally valid choices the engine made.
/// </summary>
internal sealed class RecordingCompressor(ICompressor inner) : ICompressor
{
    private readonly ConcurrentDictionary<(int Layer, int Host), (float[] Data, long[] Shape)> _scores = new();

    public bool NeedsQuestion => inner.NeedsQuestion;

    public Tensor Score(CompressorInput input)
    {
        var scores = inner.Score(input);
        using var copy = scores.detach().cpu().to(ScalarType.Float32).contiguous();
        if (!_scores.TryAdd((input.Layer, input.Host), (copy.data<float>().ToArray(), copy.shape)))
            throw new InvalidOperationException($"layer {input.Layer} of host {input.Host} was scored twice");
        return scores;
    }

    /// <summary>The engine's scores [B, S, n_kv] fp32, or null when that host did not score that layer.</summary>
    public Tensor? Scores(int layer, int host) =>
        _scores.TryGetValue((layer, host), out var s) ? tensor(s.Data).reshape(s.Shape) : null;
}
