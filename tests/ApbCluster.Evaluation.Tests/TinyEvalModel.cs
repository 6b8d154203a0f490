using ApbCluster.Model.Layers;
using ApbCluster.Model.Loading;
using ApbCluster.Model.Tests.Support;
using ApbCluster.NativeInterop;
using static TorchSharp.torch;

namespace ApbCluster.Evaluation.Tests;

/// <summary>One tiny random Llama checkpoint (TinyCheckpoint: byte-level tokenizer, 2 layers, GQA 4/2) shared by the tests.</summary>
internal static class TinyEvalModel
{
    private static readonly Lazy<string> Dir = new(() => TinyCheckpoint.Create(TinyCheckpointOptions.Llama));
    private static readonly Lazy<ModelFolder> FolderLazy = new(() => { TorchRuntime.EnsureLoaded("cpu"); return ModelFolder.Open(Dir.Value); });

    public static string Directory => Dir.Value;
    public static ModelFolder Folder => FolderLazy.Value;

    /// <summary>A fresh fp32 CPU model (callers dispose it).</summary>
    public static LlamaModel Load() => LlamaModel.FromCheckpoint(Folder.Config, Folder.Weights, CPU, ScalarType.Float32);
}
