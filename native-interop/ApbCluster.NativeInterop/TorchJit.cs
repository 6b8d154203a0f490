using System.Runtime.InteropServices;
using TorchSharp;

namespace ApbCluster.NativeInterop;

/// <summary>Switches of libtorch's TorchScript executor that TorchSharp does not bind.</summary>
public static unsafe class TorchJit
{
    private static readonly object Gate = new();
    private static bool _plain;

    /// <summary>
    /// Runs TorchScript graphs as written: no profiling runs, no shape-specialised re-optimisation, no fusion
    /// (<c>torch::jit::setGraphExecutorOptimize(false)</c>, found through libLibTorchSharp's dependencies). Our scripts
    /// are short op sequences whose point is to skip per-op managed overhead; an optimising executor would recompile
    /// them for every new prompt length and could change a kernel's rounding behind the exactness tests' back.
    /// </summary>
    public static void UsePlainExecutor()
    {
        lock (Gate)
        {
            if (_plain) return;
            var library = NativeLibrary.Load("LibTorchSharp", typeof(torch).Assembly, null);
            var set = (delegate* unmanaged<byte, void>)NativeLibrary.GetExport(library, "_ZN5torch3jit24setGraphExecutorOptimizeEb");
            set(0);
            _plain = true;
        }
    }
}
