using System.CommandLine;
using System.Globalization;
using ApbCluster.Benchmarks;
using ApbCluster.Model.Config;
using ApbCluster.Model.Layers;
using ApbCluster.NativeInterop;
using TorchSharp;
using static TorchSharp.torch;

namespace ApbCluster.Cli.Commands;

/// <summary>`apb bench`: prefill (and decode) time of each mode at a named real model shape with random
/// weights; writes bench.json, bench.md and bench.png.</summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var shape = new Option<string>("--shape") { Description = $"model shape: {string.Join(", ", ModelShapes.Names)}", DefaultValueFactory = _ => "llama-3.1-8b" };
        var lengths = new Option<string>("--lengths") { Description = "prompt lengths, e.g. 32k,64k,128k", DefaultValueFactory = _ => "32k,64k,128k" };
        var modes = new Option<string>("--modes") { Description = "comma-separated: dense", DefaultValueFactory = _ => "dense" };
        var gpus = new Option<int>("--gpus") { Description = "GPUs to use (hosts are spread over them)", DefaultValueFactory = _ => 1 };
        var device = new Option<string>("--device") { Description = "cuda or cpu", DefaultValueFactory = _ => "cuda" };
        var dtype = new Option<string>("--dtype") { Description = "bfloat16, float16 or float32", DefaultValueFactory = _ => "bfloat16" };
        var warmup = new Option<int>("--warmup") { Description = "untimed runs per configuration", DefaultValueFactory = _ => 1 };
        var repeats = new Option<int>("--repeats") { Description = "timed runs per configuration (best is reported)", DefaultValueFactory = _ => 2 };
        var decodeContext = new Option<string?>("--decode-context") { Description = "also time dense decode at this context, e.g. 32k" };
        var decodeSteps = new Option<int>("--decode-steps") { Description = "decode steps to time", DefaultValueFactory = _ => 32 };
        var output = new Option<string>("--out", "-o") { Description = "folder for bench.json, bench.md, bench.png", Required = true };
        var cmd = new Command("bench", "Benchmark prefill/decode at a real model shape with random weights.")
            { shape, lengths, modes, gpus, device, dtype, warmup, repeats, decodeContext, decodeSteps, output };
        cmd.SetAction(pr => CliRun.Guard(() =>
        {
            var config = ModelShapes.Get(pr.GetValue(shape)!);
            var lens = ParseLengths(pr.GetValue(lengths)!, "--lengths");
            var modeList = pr.GetValue(modes)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            foreach (var m in modeList)
                if (m != "dense") throw new CliUsageException($"--modes: '{m}' is not a mode this build benchmarks (dense).");
            var dev = ModelOptions.ParseDevice(pr.GetValue(device)!);
            var dt = ModelOptions.ParseDtype(pr.GetValue(dtype)!, config, dev);
            var report = new BenchReport(pr.GetValue(shape)!, dt.ToString(), Hardware(dev), "apb " + string.Join(' ', Environment.GetCommandLineArgs().Skip(1)),
                DateTimeOffset.UtcNow, [], [], []);

            Console.Error.WriteLine($"bench: {report.Shape} {dt} on {report.Hardware}; libtorch: {TorchRuntime.Source}");
            using var model = LlamaModel.CreateRandom(config, dev, dt, seed: 1);
            foreach (int n in lens)
            {
                Console.Error.Write($"  dense prefill {n,7} tokens ... ");
                var m = DenseBench.Prefill(model, n, pr.GetValue(warmup), pr.GetValue(repeats), seed: n);
                report.Prefill.Add(m);
                Console.Error.WriteLine($"{m.Seconds:F3} s, {m.TokensPerSecond:F0} tok/s, {m.PeakGpuGiB:F1} GiB");
            }
            if (pr.GetValue(decodeContext) is { } dc)
            {
                int ctx = ParseLengths(dc, "--decode-context")[0];
                Console.Error.Write($"  dense decode at {ctx} context ... ");
                var d = DenseBench.Decode(model, ctx, pr.GetValue(decodeSteps), seed: 5);
                report.Decode.Add(d);
                Console.Error.WriteLine($"{d.MsPerTokenMedian:F2} ms/token (median)");
            }
            var files = BenchReportWriter.Write(report, pr.GetValue(output)!);
            Console.WriteLine(BenchReportWriter.Markdown(report));
            Console.Error.WriteLine("wrote " + string.Join(", ", files));
            return CliRun.Ok;
        }));
        return cmd;
    }

    internal static int[] ParseLengths(string text, string option) =>
        text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(s =>
        {
            string t = s.ToLowerInvariant();
            int mult = t.EndsWith('k') ? 1024 : 1;
            if (int.TryParse(t.TrimEnd('k'), NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) && v > 0) return v * mult;
            throw new CliUsageException($"{option}: '{s}' is not a length (e.g. 4096 or 32k).");
        }).ToArray();

    private static string Hardware(Device dev) => dev.type == DeviceType.CUDA
        ? $"{cuda.device_count()}x CUDA GPU ({GpuName()})"
        : $"CPU ({Environment.ProcessorCount} cores)";

    private static string GpuName()
    {
        try
        {
            var psi = new System.Diagnostics.ProcessStartInfo("nvidia-smi", "--query-gpu=name --format=csv,noheader") { RedirectStandardOutput = true };
            using var p = System.Diagnostics.Process.Start(psi)!;
            var name = p.StandardOutput.ReadToEnd().Split('\n')[0].Trim();
            p.WaitForExit(5000);
            return name;
        }
        catch (Exception) { return "unknown"; }
    }
}
