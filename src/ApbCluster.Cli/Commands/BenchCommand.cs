using System.CommandLine;
using System.Globalization;
using ApbCluster.Benchmarks;
using ApbCluster.Model.Config;
using ApbCluster.Model.Layers;
using ApbCluster.NativeInterop;
using ApbCluster.Parallel.Kernels;
using ApbCluster.Parallel.Plan;
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
        var modes = new Option<string>("--modes") { Description = "comma-separated: dense, ring, ulysses, star, apb", DefaultValueFactory = _ => "dense" };
        var gpus = new Option<int>("--gpus") { Description = "GPUs to use (hosts are spread over them)", DefaultValueFactory = _ => 1 };
        var hosts = new Option<int?>("--hosts") { Description = "hosts of the parallel modes (default: one per GPU)" };
        var anchorDivisor = new Option<int>("--anchor-divisor") { Description = "APB anchor = block / this (paper: 4, or 8 at 512K)", DefaultValueFactory = _ => 4 };
        var anchor = new Option<int?>("--anchor") { Description = "APB anchor length (overrides --anchor-divisor)" };
        var passing = new Option<int?>("--passing") { Description = "APB passing length per host (default block/8)" };
        var balanced = new Option<bool>("--balanced") { Description = "cost-balanced block split for apb and star" };
        var apbKernel = new Option<string>("--apb-kernel") { Description = "APB local rows: merge (two fused calls + LSE merge) or single (one bottom-right causal flash call)", DefaultValueFactory = _ => "merge" };
        var collectiveTimeout = new Option<int>("--collective-timeout") { Description = "seconds a collective may take before it is aborted", DefaultValueFactory = _ => 120 };
        var device = new Option<string>("--device") { Description = "cuda or cpu", DefaultValueFactory = _ => "cuda" };
        var dtype = new Option<string>("--dtype") { Description = "bfloat16, float16 or float32", DefaultValueFactory = _ => "bfloat16" };
        var warmup = new Option<int>("--warmup") { Description = "untimed runs per configuration", DefaultValueFactory = _ => 1 };
        var repeats = new Option<int>("--repeats") { Description = "timed runs per configuration (best is reported)", DefaultValueFactory = _ => 2 };
        var decodeContext = new Option<string?>("--decode-context") { Description = "also time dense decode at this context, e.g. 32k" };
        var decodeSteps = new Option<int>("--decode-steps") { Description = "decode steps to time", DefaultValueFactory = _ => 32 };
        var ttft = new Option<bool>("--ttft") { Description = "parallel modes: also time prefill to first token (question pass and first decode step included), as a query's time to first token" };
        var output = new Option<string>("--out", "-o") { Description = "folder for bench.json, bench.md, bench.png", Required = true };
        var cmd = new Command("bench", "Benchmark prefill/decode at a real model shape with random weights.")
            { shape, lengths, modes, gpus, hosts, anchorDivisor, anchor, passing, balanced, apbKernel, collectiveTimeout, device, dtype, warmup, repeats, decodeContext, decodeSteps, ttft, output };
        cmd.SetAction(pr => CliRun.Guard(() =>
        {
            var config = ModelShapes.Get(pr.GetValue(shape)!);
            var lens = ParseLengths(pr.GetValue(lengths)!, "--lengths");
            var modeList = pr.GetValue(modes)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            var parallelModes = modeList.Where(m => m != "dense").Select(m => Enum.TryParse<ParallelMode>(m, ignoreCase: true, out var pm)
                ? pm : throw new CliUsageException($"--modes: '{m}' is not one of dense, ring, ulysses, star, apb.")).ToArray();
            var dev = BenchDevice(pr.GetValue(device)!);
            int gpuCount = pr.GetValue(gpus);
            if (dev.type == DeviceType.CUDA && gpuCount > cuda.device_count())
                throw new CliUsageException($"--gpus {gpuCount}: this machine has {cuda.device_count()} CUDA device(s).");
            var gpuList = Enumerable.Range(0, Math.Max(1, gpuCount)).Select(i => dev.type == DeviceType.CUDA ? new Device(DeviceType.CUDA, i) : CPU).ToArray();
            int hostCount = pr.GetValue(hosts) ?? gpuList.Length;
            var dt = ModelOptions.ParseDtype(pr.GetValue(dtype)!, config, dev);
            var report = new BenchReport(pr.GetValue(shape)!, dt.ToString(), Hardware(dev), "apb " + string.Join(' ', Environment.GetCommandLineArgs().Skip(1)),
                DateTimeOffset.UtcNow, [], [], []);

            Console.Error.WriteLine($"bench: {report.Shape} {dt} on {report.Hardware}; libtorch: {TorchRuntime.Source}");
            using var bench = parallelModes.Length > 0 ? new ParallelBench(config, dt, gpuList, hostCount, seed: 1,
                TimeSpan.FromSeconds(pr.GetValue(collectiveTimeout) > 0 ? pr.GetValue(collectiveTimeout) : throw new CliUsageException("--collective-timeout must be a positive number of seconds."))) : null;
            using var ownModel = bench is null ? LlamaModel.CreateRandom(config, gpuList[0], dt, seed: 1) : null;
            var model = bench?.ModelOn(gpuList[0]) ?? ownModel!;
            if (bench != null) report.Notes.Add($"parallel modes: {bench.Hosts} hosts on {bench.Gpus} GPU(s), {bench.Collective} collective");
            var kernel = Enum.TryParse<ApbKernel>(pr.GetValue(apbKernel), ignoreCase: true, out var k) && !int.TryParse(pr.GetValue(apbKernel), out _)
                ? k : throw new CliUsageException($"--apb-kernel: '{pr.GetValue(apbKernel)}' is not merge or single.");
            var apbSettings = new BenchApbSettings(pr.GetValue(anchorDivisor), pr.GetValue(anchor), pr.GetValue(passing), pr.GetValue(balanced), Kernel: kernel);
            foreach (int n in lens)
            {
                foreach (var mode in modeList)
                {
                    Console.Error.Write($"  {mode,-8} prefill {n,7} tokens ... ");
                    try
                    {
                        var m = mode == "dense"
                            ? DenseBench.Prefill(model, n, pr.GetValue(warmup), pr.GetValue(repeats), seed: n)
                            : bench!.Prefill(Enum.Parse<ParallelMode>(mode, ignoreCase: true), n, pr.GetValue(warmup), pr.GetValue(repeats), apbSettings, seed: n,
                                ttft: pr.GetValue(ttft));
                        report.Prefill.Add(m);
                        var retried = m.Plan is { } p && p.TryGetValue("retried_after", out var firstFailure)
                            ? $"first attempt failed ({firstFailure}); measured on reconnected communicators" : null;
                        if (retried != null) report.Notes.Add($"{mode} at {n} tokens: {retried}.");
                        Console.Error.WriteLine($"{m.Seconds:F3} s, {m.TokensPerSecond:F0} tok/s, {m.PeakGpuGiB:F1} GiB" +
                            (m.TtftSeconds is { } t ? $", ttft {t:F3} s" : "") +
                            (m.Plan is { } info && info.TryGetValue("ttft_error", out var ttftError) ? $", ttft failed: {ttftError}" : "") +
                            (m.PhaseMs.Count > 0 ? "  [" + string.Join(", ", m.PhaseMs.Select(kv => $"{kv.Key} {kv.Value:F0} ms")) + "]" : "") +
                            (retried != null ? $"  ({retried})" : ""));
                    }
                    catch (Exception e) when (e is not CliUsageException)
                    {
                        // One configuration that does not fit (e.g. dense out of memory) must not lose the others.
                        string reason = e.Message.Split('\n')[0];
                        report.Notes.Add($"{mode} at {n} tokens failed: {reason}");
                        Console.Error.WriteLine("failed: " + reason);
                    }
                }
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

    /// <summary>CUDA is bench's default (it measures GPUs); where this build or machine has none, say how to run it on the CPU.</summary>
    private static Device BenchDevice(string name)
    {
        try
        {
            return ModelOptions.ParseDevice(name);
        }
        catch (ApbCluster.NativeInterop.TorchLoadException e) when (name.StartsWith("cuda", StringComparison.OrdinalIgnoreCase))
        {
            throw new CliUsageException($"--device {name} (bench's default): {e.Message} To benchmark on this machine's CPU, add --device cpu.");
        }
    }

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
