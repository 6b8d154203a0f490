using System.Diagnostics;
using System.Runtime.InteropServices;
using TorchSharp;

namespace ApbCluster.NativeInterop;

/// <summary>
/// Loads libtorch once per process. CPU builds use the bundled libtorch-cpu; GPU hosts use the
/// libtorch of an existing PyTorch install (APB_TORCH_LIB, else found through python3), preloaded
/// before TorchSharp's first call so that TorchSharp binds to it.
/// </summary>
public static class TorchRuntime
{
    private static readonly object Gate = new();
    private static bool _cpuReady, _cudaReady;

    /// <summary>The host PyTorch's torch/lib folder once loaded from there (NCCL/CUDA are found next to it).</summary>
    public static string? HostTorchLib { get; private set; }

    /// <summary>Where libtorch came from, for start-up logs.</summary>
    public static string Source { get; private set; } = "not loaded";

    /// <summary>Makes torch usable on <paramref name="device"/> ("cpu", "cuda" or "cuda:N").</summary>
    public static void EnsureLoaded(string device = "cpu")
    {
        bool cuda = device.StartsWith("cuda", StringComparison.OrdinalIgnoreCase);
        lock (Gate)
        {
            if (cuda ? _cudaReady : _cpuReady) return;
            if (cuda) LoadCuda(); else LoadCpu();
        }
    }

    /// <summary>Whether CUDA can be used here: a GPU-flavour build (host libtorch) that sees a device. Loads it if so.
    /// CPU-only builds answer false without touching the host's PyTorch.</summary>
    public static bool TryCuda()
    {
        if (BundledCpuLibTorch() is not null) return false;
        try
        {
            EnsureLoaded("cuda");
            return true;
        }
        catch (TorchLoadException)
        {
            return false;
        }
    }

    private static void LoadCpu()
    {
        // A host libtorch (GPU flavour, or APB_TORCH_LIB set) also serves CPU tensors.
        var hostLib = FindHostTorchLib(required: false);
        if (hostLib != null) PreloadHostTorch(hostLib, cuda: false);
        CheckLibTorchSharpLoads();
        try { torch.InitializeDeviceType(DeviceType.CPU); }
        catch (Exception e) { throw Fail("libtorch (CPU)", hostLib ?? AppContext.BaseDirectory, e.Message); }
        if (hostLib == null) Source = "bundled libtorch-cpu (" + AppContext.BaseDirectory + ")";
        _cpuReady = true;
    }

    private static void LoadCuda()
    {
        if (BundledCpuLibTorch() is { } bundled)
            throw new TorchLoadException(
                $"CUDA was requested, but this build ships the CPU-only libtorch ({bundled}). Build the GPU flavour (-p:ApbGpu=true), which uses the host's PyTorch install.");
        var hostLib = FindHostTorchLib(required: true)!;
        PreloadHostTorch(hostLib, cuda: true);
        CheckLibTorchSharpLoads();
        try { torch.InitializeDeviceType(DeviceType.CUDA); }
        catch (Exception e) { throw Fail("libtorch (CUDA)", hostLib, e.Message); }
        if (!torch.cuda.is_available())
            throw new TorchLoadException($"libtorch from {hostLib} loaded, but it sees no CUDA device (driver missing, or CUDA_VISIBLE_DEVICES empty).");
        _cudaReady = _cpuReady = true;
    }

    private static void PreloadHostTorch(string dir, bool cuda)
    {
        var libs = cuda
            ? new[] { "libc10.so", "libc10_cuda.so", "libtorch_cpu.so", "libtorch_cuda.so", "libtorch.so" }
            : new[] { "libc10.so", "libtorch_cpu.so", "libtorch.so" };
        foreach (var name in libs)
        {
            var path = Path.Combine(dir, name);
            if (!File.Exists(path))
                throw new TorchLoadException($"{name} not found in {dir} (set APB_TORCH_LIB to the 'lib' folder of a PyTorch install).");
            try { NativeLibrary.Load(path); }
            catch (Exception e) { throw Fail(name, path, e.Message); }
        }
        Source = "host PyTorch libtorch (" + dir + ")";
        HostTorchLib = dir;
    }

    /// <summary>Loads libLibTorchSharp ourselves first so a failure names the file and the loader's reason
    /// (TorchSharp's own message blames a missing libtorch-cpu reference instead).</summary>
    private static void CheckLibTorchSharpLoads()
    {
        var candidates = new[]
        {
            Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "libLibTorchSharp.so"),
            Path.Combine(AppContext.BaseDirectory, "libLibTorchSharp.so"),
        };
        if (!OperatingSystem.IsLinux()) return;
        var path = candidates.FirstOrDefault(File.Exists);
        if (path == null) return; // let TorchSharp search its own way
        try { NativeLibrary.Load(path); }
        catch (Exception e) { throw Fail("libLibTorchSharp.so", path, e.Message); }
    }

    private static string? BundledCpuLibTorch() => new[]
    {
        Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "libtorch_cpu.so"),
        Path.Combine(AppContext.BaseDirectory, "libtorch_cpu.so"),
    }.FirstOrDefault(File.Exists);

    /// <summary>The lib folder of a PyTorch install: APB_TORCH_LIB, else asked of python3.</summary>
    public static string? FindHostTorchLib(bool required)
    {
        var env = Environment.GetEnvironmentVariable("APB_TORCH_LIB");
        if (!string.IsNullOrWhiteSpace(env))
        {
            if (!File.Exists(Path.Combine(env, "libtorch.so")))
                throw new TorchLoadException($"APB_TORCH_LIB={env}: no libtorch.so there (it must be the 'lib' folder of a PyTorch install).");
            return env;
        }
        if (!required) return null;
        var fromPython = AskPythonForTorchLib();
        return fromPython ?? throw new TorchLoadException(
            "CUDA was requested but no host libtorch was found: set APB_TORCH_LIB to <site-packages>/torch/lib, or install PyTorch for python3.");
    }

    private static string? AskPythonForTorchLib()
    {
        try
        {
            var psi = new ProcessStartInfo("python3", "-c \"import torch,os;print(os.path.join(os.path.dirname(torch.__file__),'lib'))\"")
            { RedirectStandardOutput = true, RedirectStandardError = true };
            using var p = Process.Start(psi);
            if (p == null) return null;
            var output = p.StandardOutput.ReadToEnd().Trim();
            p.WaitForExit(30_000);
            return p.ExitCode == 0 && File.Exists(Path.Combine(output, "libtorch.so")) ? output : null;
        }
        catch (Exception) { return null; }
    }

    private static TorchLoadException Fail(string library, string path, string reason) =>
        new($"Could not load {library} from {path}: {reason}");
}

/// <summary>libtorch (or a library it needs) could not be loaded; the message names the file and the reason.</summary>
public sealed class TorchLoadException(string message) : Exception(message);
