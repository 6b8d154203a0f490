using System.Reflection;
using System.Runtime.InteropServices;
using TorchSharp;

namespace ApbCluster.NativeInterop;

/// <summary>
/// Finds the native libraries our <c>[LibraryImport]</c>s name: "nccl" -> libnccl.so.2 and
/// "cudart" -> libcudart.so.13 (or .12). GPU hosts carry both inside their PyTorch install, not on
/// the loader path, so we look there too; a miss throws <see cref="NativeLibraryNotFoundException"/>
/// naming the library and every place we looked.
/// </summary>
public static class NativeLibraries
{
    public const string Nccl = "nccl";
    public const string CudaRuntime = "cudart";
    public const string LibTorchSharp = "LibTorchSharp";

    private static readonly object Gate = new();
    private static readonly Dictionary<string, IntPtr> Loaded = new();
    private static bool _registered;

    /// <summary>Registers the resolver for this assembly (idempotent; the runtime allows one per assembly).</summary>
    public static void EnsureResolver()
    {
        lock (Gate)
        {
            if (_registered) return;
            NativeLibrary.SetDllImportResolver(typeof(NativeLibraries).Assembly, Resolve);
            _registered = true;
        }
    }

    private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? searchPath) => name switch
    {
        Nccl or CudaRuntime => Load(name),
        // Use the copy TorchSharp already loaded (same handle), else let the default probing decide.
        LibTorchSharp => NativeLibrary.TryLoad(name, typeof(torch).Assembly, searchPath, out var h) ? h : IntPtr.Zero,
        _ => IntPtr.Zero,
    };

    /// <summary>Loads "nccl" or "cudart" (cached) or throws naming the places searched.</summary>
    public static IntPtr Load(string name)
    {
        lock (Gate)
        {
            if (Loaded.TryGetValue(name, out var cached)) return cached;
            var (envVar, fileNames, torchRelativeDirs) = Describe(name);
            var handle = TryLoad(envVar, fileNames, torchRelativeDirs, out var tried);
            if (handle == IntPtr.Zero)
                throw new NativeLibraryNotFoundException(name, fileNames, tried);
            Loaded[name] = handle;
            return handle;
        }
    }

    /// <summary>True when <paramref name="name"/> can be loaded here (no exception).</summary>
    public static bool IsAvailable(string name)
    {
        try { Load(name); return true; }
        catch (NativeLibraryNotFoundException) { return false; }
    }

    private static (string EnvVar, string[] FileNames, string[] TorchRelativeDirs) Describe(string name) => name switch
    {
        Nccl => ("APB_NCCL_LIB", ["libnccl.so.2", "libnccl.so"], ["nvidia/nccl/lib"]),
        CudaRuntime => ("APB_CUDART_LIB", ["libcudart.so.13", "libcudart.so.12", "libcudart.so"],
            ["nvidia/cu13/lib", "nvidia/cuda_runtime/lib"]),
        _ => throw new ArgumentException($"unknown native library '{name}'", nameof(name)),
    };

    private static IntPtr TryLoad(string envVar, string[] fileNames, string[] torchRelativeDirs, out List<string> tried)
    {
        tried = [];
        // 1. An explicit file wins.
        var explicitPath = Environment.GetEnvironmentVariable(envVar);
        if (!string.IsNullOrWhiteSpace(explicitPath))
        {
            tried.Add($"{explicitPath} (from {envVar})");
            if (NativeLibrary.TryLoad(explicitPath, out var h)) return h;
        }
        // 2. The bare soname: returns the copy libtorch already loaded, or finds it on the loader path.
        foreach (var file in fileNames)
        {
            tried.Add($"{file} (loader search path)");
            if (NativeLibrary.TryLoad(file, out var h)) return h;
        }
        // 3. LD_LIBRARY_PATH then the PyTorch install's nvidia/* wheels, by full path.
        foreach (var dir in CandidateDirectories(torchRelativeDirs))
            foreach (var file in fileNames)
            {
                var path = Path.Combine(dir, file);
                tried.Add(path);
                if (File.Exists(path) && NativeLibrary.TryLoad(path, out var h)) return h;
            }
        return IntPtr.Zero;
    }

    private static IEnumerable<string> CandidateDirectories(string[] torchRelativeDirs)
    {
        var ld = Environment.GetEnvironmentVariable("LD_LIBRARY_PATH") ?? "";
        foreach (var dir in ld.Split(':', StringSplitOptions.RemoveEmptyEntries)) yield return dir;
        foreach (var sitePackages in SitePackagesCandidates())
            foreach (var rel in torchRelativeDirs)
                yield return Path.GetFullPath(Path.Combine(sitePackages, rel));
        yield return "/usr/local/cuda/lib64";
    }

    /// <summary>site-packages is two levels above torch/lib (APB_TORCH_LIB, or the libtorch we loaded).</summary>
    private static IEnumerable<string> SitePackagesCandidates()
    {
        var seen = new HashSet<string>();
        foreach (var torchLib in new[] { Environment.GetEnvironmentVariable("APB_TORCH_LIB"), TorchRuntime.HostTorchLib })
        {
            if (string.IsNullOrWhiteSpace(torchLib)) continue;
            var site = Path.GetFullPath(Path.Combine(torchLib, "..", ".."));
            if (seen.Add(site)) yield return site;
        }
    }
}

/// <summary>A native library could not be found or loaded; the message lists every place searched.</summary>
public sealed class NativeLibraryNotFoundException(string library, IReadOnlyList<string> fileNames, IReadOnlyList<string> searched)
    : DllNotFoundException(
        $"Native library '{library}' ({string.Join(" / ", fileNames)}) was not found. Searched: {string.Join("; ", searched)}. " +
        "On GPU hosts set APB_TORCH_LIB to <site-packages>/torch/lib (NCCL and the CUDA runtime ship in <site-packages>/nvidia/...), " +
        "or point APB_NCCL_LIB / APB_CUDART_LIB at the file.")
{
    public string Library { get; } = library;
    public IReadOnlyList<string> Searched { get; } = searched;
}
