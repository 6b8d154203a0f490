using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using ApbCluster.Benchmarks;
using ApbCluster.Model.Attention;
using ApbCluster.Model.Config;
using ApbCluster.Model.KvStores;
using ApbCluster.Model.Layers;
using ApbCluster.NativeInterop;
using ApbCluster.Parallel.Kernels;
using ApbCluster.Parallel.Plan;
using TorchSharp;
using static TorchSharp.torch;

namespace ApbCluster.Cli.Commands;

/// <summary>`apb bench`: prefill (and decode) time of each mode at a named real model shape with random
/// weights; writes bench.json, bench.md and bench.png.
/// <para>On CUDA every (mode, length) runs in a child process of its own: libtorch's caching allocator keeps what a
/// run reserved and TorchSharp offers no peak reset, so only a fresh process gives each configuration its own GPU
/// memory high-water (and no configuration inherits another's cached blocks or warm kernels).</para></summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var shape = new Option<string>("--shape") { Description = $"model shape: {string.Join(", ", ModelShapes.Names)}", DefaultValueFactory = _ => "llama-3.1-8b" };
        var lengths = new Option<string>("--lengths") { Description = "prompt lengths, e.g. 32k,64k,128k", DefaultValueFactory = _ => "32k,64k,128k" };
        var modes = new Option<string>("--modes") { Description = "comma-separated: dense, dense-criti, ring, ulysses, star, apb, apb-criti (*-criti: CritiPrefill with the --criti-* parameters)", DefaultValueFactory = _ => "dense" };
        var criti = new PrefillAttentionCliOptions(withSwitch: false);
        var gpus = new Option<int>("--gpus") { Description = "GPUs to use (hosts are spread over them)", DefaultValueFactory = _ => 1 };
        var hosts = new Option<int?>("--hosts") { Description = "hosts of the parallel modes (default: one per GPU)" };
        var anchorDivisor = new Option<int>("--anchor-divisor") { Description = $"APB anchor = block / this (default {ApbPlan.DefaultAnchorDivisor}; the paper's is 4)", DefaultValueFactory = _ => ApbPlan.DefaultAnchorDivisor };
        var anchor = new Option<int?>("--anchor") { Description = "APB anchor length (overrides --anchor-divisor)" };
        var passing = new Option<int?>("--passing") { Description = "APB passing length per host (default block/8)" };
        var split = new Option<string>("--split") { Description = "apb and star blocks: balanced (equal cost per host, the default) or equal", DefaultValueFactory = _ => "balanced" };
        var apbKernel = new Option<string>("--apb-kernel") { Description = "APB local rows: merge (two fused calls + LSE merge) or single (one bottom-right causal flash call)", DefaultValueFactory = _ => "merge" };
        var collectiveTimeout = new Option<int>("--collective-timeout") { Description = "seconds a collective may take before it is aborted", DefaultValueFactory = _ => 120 };
        var device = new Option<string>("--device") { Description = "cuda or cpu", DefaultValueFactory = _ => "cuda" };
        var dtype = new Option<string>("--dtype") { Description = "bfloat16, float16 or float32", DefaultValueFactory = _ => "bfloat16" };
        var warmup = new Option<int>("--warmup") { Description = "untimed runs per configuration", DefaultValueFactory = _ => 1 };
        var repeats = new Option<int>("--repeats") { Description = "timed runs per configuration (best and median are reported)", DefaultValueFactory = _ => 3 };
        var decodeContext = new Option<string?>("--decode-context") { Description = "also time decode at these contexts, e.g. 32k,128k (each sequence its own context of that length)" };
        var decodeBatch = new Option<string>("--decode-batch") { Description = "sequences decoding together, e.g. 1,4,16 or 1,max (max: as many as fit; ms per step and aggregate tokens/s of each)", DefaultValueFactory = _ => "1" };
        var kv = new KvStoreCliOptions();
        var serveQueries = new Option<string?>("--serve-queries") { Description = "also run this many APB queries at once on --hosts virtual hosts (default 2) on one device, e.g. 1,4: decode tokens/s with batch decode off and on" };
        var serveWait = new Option<string>("--serve-batch-wait") { Description = "milliseconds a host's decode batch holds for queries still waiting on their peers, e.g. 0,1 (each a run with batch decode on)", DefaultValueFactory = _ => "0" };
        var serveContext = new Option<string>("--serve-context") { Description = "document tokens of each --serve-queries query", DefaultValueFactory = _ => "32k" };
        var decodeSteps = new Option<int>("--decode-steps") { Description = "decode steps to time", DefaultValueFactory = _ => 32 };
        var ttft = new Option<bool>("--ttft") { Description = "parallel modes: also time prefill to first token (question pass and first decode step included), as a query's time to first token" };
        var calibrate = new Option<bool>("--calibrate") { Description = "also measure the attention and token rates of the balanced split's cost model on this device" };
        var isolate = new Option<string>("--isolate") { Description = "each (mode, length) in its own process: auto (on CUDA), on or off", DefaultValueFactory = _ => "auto" };
        var childOut = new Option<string?>("--child-out") { Hidden = true, Description = "internal: run in this process and write the report as JSON here" };
        var output = new Option<string>("--out", "-o") { Description = "folder for bench.json, bench.md, bench.png", Required = true };
        var cmd = new Command("bench", "Benchmark prefill/decode at a real model shape with random weights.")
        {
            shape, lengths, modes, gpus, hosts, anchorDivisor, anchor, passing, split, apbKernel, collectiveTimeout, device, dtype, warmup,
            repeats, decodeContext, decodeBatch, decodeSteps, serveQueries, serveContext, serveWait, ttft, calibrate, isolate, childOut, output,
        };
        criti.AddTo(cmd);
        kv.AddTo(cmd);
        cmd.SetAction(pr => CliRun.Guard(() =>
        {
            var config = ModelShapes.Get(pr.GetValue(shape)!);
            // A decode-only run (--decode-context without --lengths) skips the prefill table.
            bool prefillAsked = pr.GetResult(lengths) is { Implicit: false } || (pr.GetValue(decodeContext) is null && pr.GetValue(serveQueries) is null);
            var serveCounts = pr.GetValue(serveQueries) is { } sq ? ParseCounts(sq, "--serve-queries") : [];
            if (serveCounts.Contains(0)) throw new CliUsageException("--serve-queries takes whole numbers of queries (max is for --decode-batch).");
            var serveWaits = ParseWaits(pr.GetValue(serveWait)!);
            int serveTokens = ParseLengths(pr.GetValue(serveContext)!, "--serve-context") is [var st] ? st : throw new CliUsageException("--serve-context takes one length, e.g. 32k.");
            var lens = prefillAsked ? ParseLengths(pr.GetValue(lengths)!, "--lengths") : [];
            var modeList = pr.GetValue(modes)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            foreach (var m in modeList) ParseMode(m);
            var critiOptions = criti.Parameters(pr);
            var batches = ParseCounts(pr.GetValue(decodeBatch)!, "--decode-batch");
            var shadowKv = kv.Parse(pr);
            if (pr.GetValue(decodeSteps) < 1) throw new CliUsageException($"--decode-steps {pr.GetValue(decodeSteps)}: at least 1 step to time.");
            if (pr.GetValue(repeats) < 1) throw new CliUsageException($"--repeats {pr.GetValue(repeats)}: at least 1 timed run (3 or more for a median worth reporting).");
            if (pr.GetValue(warmup) < 0) throw new CliUsageException($"--warmup {pr.GetValue(warmup)}: must not be negative.");
            if (pr.GetValue(collectiveTimeout) <= 0) throw new CliUsageException("--collective-timeout must be a positive number of seconds.");
            var dev = BenchDevice(pr.GetValue(device)!);
            int gpuCount = pr.GetValue(gpus);
            if (dev.type == DeviceType.CUDA && gpuCount > cuda.device_count())
                throw new CliUsageException($"--gpus {gpuCount}: this machine has {cuda.device_count()} CUDA device(s).");
            var gpuList = Enumerable.Range(0, Math.Max(1, gpuCount)).Select(i => dev.type == DeviceType.CUDA ? new Device(DeviceType.CUDA, i) : CPU).ToArray();
            var dt = ModelOptions.ParseDtype(pr.GetValue(dtype)!, config, dev);
            var apbSettings = new BenchApbSettings(pr.GetValue(anchorDivisor) >= 1 ? pr.GetValue(anchorDivisor) : throw new CliUsageException("--anchor-divisor must be at least 1."),
                pr.GetValue(anchor), pr.GetValue(passing), ParseSplit(pr.GetValue(split)!), Kernel: ParseKernel(pr.GetValue(apbKernel)!));
            var report = new BenchReport(pr.GetValue(shape)!, dt.ToString(), Hardware(dev), "apb " + string.Join(' ', Environment.GetCommandLineArgs().Skip(1)),
                DateTimeOffset.UtcNow, [], [], []);
            bool isolated = pr.GetValue(childOut) is null && pr.GetValue(isolate) switch
            {
                "auto" => dev.type == DeviceType.CUDA,
                "on" => true,
                "off" => false,
                var v => throw new CliUsageException($"--isolate '{v}': expected auto, on or off."),
            };
            Console.Error.WriteLine($"bench: {report.Shape} {dt} on {report.Hardware}; libtorch: {TorchRuntime.Source}{(isolated ? "; one process per configuration" : "")}");

            if (isolated)
            {
                foreach (int n in lens)
                    foreach (var mode in modeList)
                        Merge(report, RunChild(Environment.GetCommandLineArgs().Skip(2).ToArray(), mode, n), $"{mode} at {n} tokens");
            }
            else
                RunPrefill(report, config, dt, gpuList, pr.GetValue(hosts) ?? gpuList.Length, modeList, lens, apbSettings, pr.GetValue(warmup),
                    pr.GetValue(repeats), pr.GetValue(ttft), TimeSpan.FromSeconds(pr.GetValue(collectiveTimeout)), critiOptions);

            if (serveCounts.Length > 0)
            {
                using var model = LlamaModel.CreateRandom(config, gpuList[0], dt, seed: 1);
                RunServe(report, model, pr.GetValue(hosts) ?? 2, serveCounts, serveTokens, pr.GetValue(decodeSteps), serveWaits);
            }
            if (pr.GetValue(decodeContext) is { } || pr.GetValue(calibrate))
            {
                using var model = LlamaModel.CreateRandom(config, gpuList[0], dt, seed: 1);
                if (pr.GetValue(calibrate))
                {
                    Console.Error.Write("  calibrate the cost model at 16384 tokens ... ");
                    var c = CostCalibration.Measure(model, 16384);
                    report.Notes.Add(string.Create(CultureInfo.InvariantCulture,
                        $"cost model calibration ({c.Tokens} tokens, one layer): token {c.TokenMs:F2} ms, causal attention {c.CausalMs:F2} ms, unmasked attention over half the keys {c.UnmaskedMs:F2} ms => attention {c.Rates.AttentionFlopsPerSecond / 1e12:F0} TFLOP/s, token work {c.Rates.TokenFlopsPerSecond / 1e12:F0} TFLOP/s"));
                    Console.Error.WriteLine(report.Notes[^1]);
                }
                if (pr.GetValue(decodeContext) is { } dc)
                    foreach (int ctx in ParseLengths(dc, "--decode-context"))
                        RunDecode(report, model, ctx, batches, pr.GetValue(decodeSteps), shadowKv);
            }
            if (pr.GetValue(childOut) is { } childFile)
            {
                File.WriteAllText(childFile, JsonSerializer.Serialize(report));
                return CliRun.Ok;
            }
            var files = BenchReportWriter.Write(report, pr.GetValue(output)!);
            Console.WriteLine(BenchReportWriter.Markdown(report));
            Console.Error.WriteLine("wrote " + string.Join(", ", files));
            return CliRun.Ok;
        }));
        return cmd;
    }

    private static void RunPrefill(BenchReport report, ModelConfig config, ScalarType dt, Device[] gpuList, int hostCount, string[] modeList,
        int[] lens, BenchApbSettings apb, int warmup, int repeats, bool ttft, TimeSpan collectiveTimeout, CritiPrefillOptions critiOptions)
    {
        bool parallel = modeList.Any(m => ParseMode(m).Mode != ParallelMode.Dense);
        using var bench = parallel ? new ParallelBench(config, dt, gpuList, hostCount, seed: 1, collectiveTimeout) : null;
        using var ownModel = bench is null ? LlamaModel.CreateRandom(config, gpuList[0], dt, seed: 1) : null;
        var model = bench?.ModelOn(gpuList[0]) ?? ownModel!;
        if (bench != null) report.Notes.Add($"parallel modes: {bench.Hosts} hosts on {bench.Gpus} GPU(s), {bench.Collective} collective");
        if (modeList.Any(m => ParseMode(m).Criti)) report.Notes.Add($"*-criti modes: {critiOptions}; criticality = the estimation's own phase");
        foreach (int n in lens)
            foreach (var mode in modeList)
            {
                Console.Error.Write($"  {mode,-8} prefill {n,7} tokens ... ");
                try
                {
                    var (parallelMode, pruned) = ParseMode(mode);
                    var m = parallelMode == ParallelMode.Dense
                        ? DenseBench.Prefill(model, n, warmup, repeats, seed: n, pruned ? critiOptions : null)
                        : bench!.Prefill(parallelMode, n, warmup, repeats, apb, seed: n, ttft: ttft, pruned ? critiOptions : null);
                    report.Prefill.Add(m);
                    var retried = m.Plan is { } p && p.TryGetValue("retried_after", out var firstFailure)
                        ? $"first attempt failed ({firstFailure}); measured on reconnected communicators" : null;
                    if (retried != null) report.Notes.Add($"{mode} at {n} tokens: {retried}.");
                    Console.Error.WriteLine($"{m.Seconds:F3} s (median {m.MedianSeconds:F3}), {m.TokensPerSecond:F0} tok/s, {m.PeakGpuGiB:F1} GiB" +
                        (m.TtftSeconds is { } t ? $", ttft {t:F3} s" : "") +
                        (m.Plan is { } info && info.TryGetValue("ttft_error", out var ttftError) ? $", ttft failed: {ttftError}" : "") +
                        (m.Plan is { } pi && pi.TryGetValue("projected_seconds_one_gpu_per_host", out var proj) ? $", projected with a GPU per host {proj} s" : "") +
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

    /// <summary>Batched decode at one context; a batch that does not fit is noted, not fatal.</summary>
    private static void RunDecode(BenchReport report, LlamaModel model, int context, int[] batches, int steps, ShadowKvOptions? shadowKv)
    {
        Console.Error.WriteLine($"  decode at {context} context{(shadowKv is null ? "" : ", " + shadowKv)}, batches {string.Join(", ", batches.Select(b => b == 0 ? "max" : b.ToString(CultureInfo.InvariantCulture)))}:");
        try
        {
            report.Decode.AddRange(DecodeBench.Batched(model, context, batches, steps, seed: 5, line => Console.Error.WriteLine("    " + line), shadowKv));
        }
        catch (Exception e) when (e is not CliUsageException)
        {
            string reason = e.Message.Split('\n')[0];
            report.Notes.Add($"decode at {context} tokens{(shadowKv is null ? "" : " with ShadowKV")}, batches {string.Join(", ", batches)}, failed: {reason}");
            Console.Error.WriteLine("    failed: " + reason);
        }
        if (FusedAttention.RaggedKernelDisabledBecause is { } why)
            report.Notes.Add($"decode attention ran per sequence: the one-call ragged kernel failed ({why})");
    }

    /// <summary>Each count of concurrent queries with batch decode off, then on (one query: off only, the same path).</summary>
    private static void RunServe(BenchReport report, LlamaModel model, int hosts, int[] counts, int context, int steps, TimeSpan[] waits)
    {
        foreach (int n in counts)
            foreach (var wait in n == 1 ? new TimeSpan?[] { null } : [null, .. waits.Select(w => (TimeSpan?)w)])
            {
                bool batch = wait is not null;
                Console.Error.Write($"  {n} APB queries of {context} tokens on {hosts} virtual hosts, batch decode {(batch ? $"on (wait {wait!.Value.TotalMilliseconds} ms)" : "off")} ... ");
                try
                {
                    var m = ServeBench.Run(model, hosts, n, context, steps, batch, seed: 11, wait ?? default);
                    report.Serve.Add(m);
                    Console.Error.WriteLine($"{m.DecodeTokensPerSecond:F1} decode tokens/s, {m.MsPerTokenMedian:F2} ms/token per query, {m.SharedCalls}/{m.Calls} shared calls");
                }
                catch (Exception e) when (e is not CliUsageException)
                {
                    string reason = e.Message.Split('\n')[0];
                    report.Notes.Add($"{n} concurrent queries (batch decode {(batch ? "on" : "off")}) failed: {reason}");
                    Console.Error.WriteLine("failed: " + reason);
                }
            }
    }

    private static TimeSpan[] ParseWaits(string text)
    {
        var parts = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var ms = parts.Select(p => double.TryParse(p, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) && v >= 0 && v <= 1000 ? v : -1).ToArray();
        if (ms.Length == 0 || ms.Contains(-1))
            throw new CliUsageException($"--serve-batch-wait '{text}': expected milliseconds from 0 to 1000, separated by commas, e.g. 0,1.");
        return ms.Select(TimeSpan.FromMilliseconds).ToArray();
    }

    /// <summary>A comma-separated list of positive counts or "max" (as 0), e.g. "1,4,16" or "1,max".</summary>
    private static int[] ParseCounts(string text, string option)
    {
        var parts = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var counts = parts.Select(p => p == "max" ? 0 : int.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n >= 1 ? n : -1).ToArray();
        if (counts.Length == 0 || counts.Contains(-1))
            throw new CliUsageException($"{option} '{text}': expected positive whole numbers or max, separated by commas, e.g. 1,4,16 or 1,max.");
        return counts;
    }

    /// <summary>This command again for one (mode, length), prefill only, in a new process; its report, or null with the
    /// reason noted when it died (an out-of-memory kill must not lose the other configurations). <paramref name="args"/>:
    /// this process's arguments after the verb.</summary>
    private static (BenchReport? Report, string? Error) RunChild(string[] args, string mode, int length)
    {
        var file = Path.GetTempFileName();
        var keep = new List<string>();
        for (int i = 0; i < args.Length; i++)
        {
            // Drop what the child gets anew or must not do: its configuration, output, decode and calibration.
            if (args[i] is "--lengths" or "--modes" or "--out" or "-o" or "--isolate" or "--decode-context" or "--serve-queries") { i++; continue; }
            if (args[i] is "--calibrate") continue;
            if (args[i].StartsWith("--lengths=") || args[i].StartsWith("--modes=") || args[i].StartsWith("--out=") || args[i].StartsWith("--isolate=")
                || args[i].StartsWith("--decode-context=") || args[i].StartsWith("--serve-queries=")) continue;
            keep.Add(args[i]);
        }
        var psi = new ProcessStartInfo(Environment.ProcessPath!) { RedirectStandardError = false, RedirectStandardOutput = true, UseShellExecute = false };
        // The `apb` apphost, or `dotnet apb.dll` when started that way.
        if (Path.GetFileNameWithoutExtension(Environment.ProcessPath!) == "dotnet") psi.ArgumentList.Add(Environment.GetCommandLineArgs()[0]);
        psi.ArgumentList.Add("bench");
        foreach (var a in keep) psi.ArgumentList.Add(a);
        foreach (var a in new[] { "--lengths", length.ToString(CultureInfo.InvariantCulture), "--modes", mode, "--out", Path.GetTempPath(), "--child-out", file })
            psi.ArgumentList.Add(a);
        try
        {
            using var p = Process.Start(psi)!;
            p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            if (p.ExitCode != 0 || new FileInfo(file).Length == 0) return (null, $"its process exited with code {p.ExitCode}");
            return (JsonSerializer.Deserialize<BenchReport>(File.ReadAllText(file)), null);
        }
        finally { File.Delete(file); }
    }

    private static void Merge(BenchReport into, (BenchReport? Report, string? Error) child, string what)
    {
        if (child.Report is not { } r)
        {
            into.Notes.Add($"{what} failed: {child.Error}");
            return;
        }
        into.Prefill.AddRange(r.Prefill);
        foreach (var note in r.Notes.Where(n => !into.Notes.Contains(n))) into.Notes.Add(note);
    }

    /// <summary>A --modes entry: a parallel mode, "-criti" for CritiPrefill (dense and apb).</summary>
    internal static (ParallelMode Mode, bool Criti) ParseMode(string text)
    {
        string name = text.Trim().ToLowerInvariant();
        bool criti = name.EndsWith("-criti", StringComparison.Ordinal);
        string bare = criti ? name[..^"-criti".Length] : name;
        if (Enum.TryParse<ParallelMode>(bare, ignoreCase: true, out var mode) && !int.TryParse(bare, out _) && (!criti || mode is ParallelMode.Dense or ParallelMode.Apb))
            return (mode, criti);
        throw new CliUsageException($"--modes: '{text}' is not one of dense, dense-criti, ring, ulysses, star, apb, apb-criti.");
    }

    internal static BlockSplit ParseSplit(string text) => text.ToLowerInvariant() switch
    {
        "balanced" => BlockSplit.Balanced,
        "equal" => BlockSplit.Equal,
        _ => throw new CliUsageException($"--split '{text}': expected balanced or equal."),
    };

    private static ApbKernel ParseKernel(string text) =>
        Enum.TryParse<ApbKernel>(text, ignoreCase: true, out var k) && !int.TryParse(text, out _)
            ? k : throw new CliUsageException($"--apb-kernel: '{text}' is not merge or single.");

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
            var psi = new ProcessStartInfo("nvidia-smi", "--query-gpu=name --format=csv,noheader") { RedirectStandardOutput = true };
            using var p = Process.Start(psi)!;
            var name = p.StandardOutput.ReadToEnd().Split('\n')[0].Trim();
            p.WaitForExit(5000);
            return name;
        }
        catch (Exception) { return "unknown"; }
    }
}
