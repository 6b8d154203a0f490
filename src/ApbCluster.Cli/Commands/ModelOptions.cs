using System.CommandLine;
using ApbCluster.Model.Config;
using ApbCluster.Model.Layers;
using ApbCluster.Model.Loading;
using ApbCluster.NativeInterop;
using TorchSharp;
using static TorchSharp.torch;

namespace ApbCluster.Cli.Commands;

/// <summary>--model / --device / --dtype, shared by the verbs that run a model.</summary>
internal sealed class ModelOptions
{
    public readonly Option<string> Model = new("--model", "-m") { Description = "Hugging Face model folder (config.json, *.safetensors, tokenizer.json)", Required = true };
    public readonly Option<string> Device = new("--device") { Description = "cpu, cuda or cuda:N", DefaultValueFactory = _ => "cpu" };
    public readonly Option<string> Dtype = new("--dtype") { Description = "auto (the checkpoint's dtype on CUDA, float32 on CPU), float32, bfloat16 or float16", DefaultValueFactory = _ => "auto" };

    public void AddTo(Command c)
    {
        c.Options.Add(Model);
        c.Options.Add(Device);
        c.Options.Add(Dtype);
    }

    public static Device ParseDevice(string text)
    {
        TorchRuntime.EnsureLoaded(text);
        return text.ToLowerInvariant() switch
        {
            "cpu" => CPU,
            "cuda" => CUDA,
            var s when s.StartsWith("cuda:") && int.TryParse(s[5..], out int i) => new Device(DeviceType.CUDA, i),
            _ => throw new CliUsageException($"--device '{text}': expected cpu, cuda or cuda:N."),
        };
    }

    public static ScalarType ParseDtype(string text, ModelConfig config, Device device) => text.ToLowerInvariant() switch
    {
        "auto" => device.type == DeviceType.CUDA ? DtypeOf(config.TorchDtype) : ScalarType.Float32,
        "float32" or "fp32" => ScalarType.Float32,
        "bfloat16" or "bf16" => ScalarType.BFloat16,
        "float16" or "fp16" => ScalarType.Float16,
        _ => throw new CliUsageException($"--dtype '{text}': expected auto, float32, bfloat16 or float16."),
    };

    private static ScalarType DtypeOf(string torchDtype) => torchDtype switch
    {
        "float16" => ScalarType.Float16,
        "float32" => ScalarType.Float32,
        _ => ScalarType.BFloat16,
    };

    /// <summary>Loads the model of --model onto --device in --dtype, reporting the time on stderr.</summary>
    public LoadedModel Load(ParseResult pr) => Load(pr.GetValue(Model)!, ParseDevice(pr.GetValue(Device)!), pr.GetValue(Dtype)!);

    /// <summary>Loads the model folder <paramref name="dir"/> onto <paramref name="device"/> (dtype as --dtype), reporting the time on stderr.</summary>
    public static LoadedModel Load(string dir, Device device, string dtypeText)
    {
        var folder = ModelFolder.Open(dir);
        var dtype = ParseDtype(dtypeText, folder.Config, device);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var model = LlamaModel.FromCheckpoint(folder.Config, folder.Weights, device, dtype);
        Console.Error.WriteLine($"loaded {folder.Directory} ({folder.Config.ModelType}, {folder.Config.NumLayers} layers) on {device} as {dtype} in {clock.Elapsed.TotalSeconds:F1} s");
        return new LoadedModel(folder, model);
    }
}

internal sealed record LoadedModel(ModelFolder Folder, LlamaModel Model) : IDisposable
{
    public void Dispose()
    {
        Model.Dispose();
        Folder.Dispose();
    }
}
