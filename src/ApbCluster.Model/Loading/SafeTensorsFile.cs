using System.IO.MemoryMappedFiles;
using ApbCluster.NativeInterop;
using TorchSharp;
using static TorchSharp.torch;

namespace ApbCluster.Model.Loading;

/// <summary>
/// One memory-mapped .safetensors file. The header is validated on open; tensors are copied
/// out of the mapping on <see cref="Load"/> (no whole-file reads).
/// </summary>
public sealed unsafe class SafeTensorsFile : IDisposable
{
    private readonly Dictionary<string, SafeTensorInfo> _tensors;
    private readonly long _dataStart;
    private MemoryMappedFile? _map;
    private MemoryMappedViewAccessor? _view;
    private byte* _base;

    public string Path { get; }
    public IReadOnlyCollection<string> Names => _tensors.Keys;
    public IReadOnlyDictionary<string, string> Metadata { get; }

    private SafeTensorsFile(string path)
    {
        Path = path;
        if (!File.Exists(path)) throw new ModelLoadException($"{path}: file not found.");
        try
        {
            using (var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read))
            {
                var (tensors, metadata, dataStart) = SafeTensorsHeader.Read(path, fs, fs.Length);
                _tensors = tensors;
                Metadata = metadata;
                _dataStart = dataStart;
            }
            _map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
            _view = _map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            _view.SafeMemoryMappedViewHandle.AcquirePointer(ref _base);
            _base += _view.PointerOffset;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Dispose();
            throw new ModelLoadException($"{path}: cannot open: {e.Message}", e);
        }
    }

    /// <summary>Opens and validates <paramref name="path"/>; errors are <see cref="ModelLoadException"/>.</summary>
    public static SafeTensorsFile Open(string path) => new(path);

    public bool Contains(string name) => _tensors.ContainsKey(name);

    public SafeTensorInfo Info(string name) =>
        _tensors.TryGetValue(name, out var info) ? info : throw new ModelLoadException($"{Path}: no tensor '{name}'.");

    /// <summary>Loads tensor <paramref name="name"/>, optionally converted to <paramref name="asType"/> and moved to <paramref name="device"/>.</summary>
    public Tensor Load(string name, ScalarType? asType = null, Device? device = null) =>
        Load(name, asType, device, TensorBytes.DefaultChunkBytes);

    /// <summary>As <see cref="Load(string, ScalarType?, Device?)"/>, copying <paramref name="chunkBytes"/> at a time (tests use tiny chunks).</summary>
    internal Tensor Load(string name, ScalarType? asType, Device? device, long chunkBytes)
    {
        ObjectDisposedException.ThrowIf(_base == null, this);
        var info = Info(name);
        var stored = SafeTensorsDType.ToScalarType(info.DType) ?? throw new ModelLoadException(
            $"{Path}: tensor '{name}' has dtype {info.DType}; supported dtypes: {string.Join(", ", SafeTensorsDType.Loadable)}.");

        TorchRuntime.EnsureLoaded("cpu");
        var t = torch.empty(info.Shape, stored, CPU);
        TensorBytes.CopyIn(t, _base + _dataStart + info.Begin, chunkBytes);

        var targetType = asType ?? stored;
        var targetDevice = device ?? CPU;
        if (targetType == stored && targetDevice.type == DeviceType.CPU) return t;
        using (t) return t.to(targetType, targetDevice);
    }

    public void Dispose()
    {
        if (_base != null)
        {
            _view!.SafeMemoryMappedViewHandle.ReleasePointer();
            _base = null;
        }
        _view?.Dispose();
        _view = null;
        _map?.Dispose();
        _map = null;
    }
}
