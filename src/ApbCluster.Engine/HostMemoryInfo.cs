using System.Globalization;

namespace ApbCluster.Engine;

/// <summary>
/// The machine's memory as ShadowKV values see it (pinned host memory): on Linux /proc/meminfo's MemTotal and
/// MemAvailable (what the kernel can hand out without swapping, not merely "free"); elsewhere, or when a container
/// limit is lower, the limit the .NET runtime sees, with this process's working set as used. Several hosts on one
/// machine each see all of it, so they should each be given a share with apb.gpu-host.host-kv-memory.
/// </summary>
public static class HostMemoryInfo
{
    public static DeviceMemory Read()
    {
        long limit = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        if (Meminfo() is var (total, available) && total <= limit)
            return new DeviceMemory(total - Math.Min(available, total), total);
        using var process = System.Diagnostics.Process.GetCurrentProcess();
        return new DeviceMemory(Math.Min(process.WorkingSet64, limit), limit);
    }

    /// <summary>(MemTotal, MemAvailable) in bytes, or null where there is no /proc/meminfo.</summary>
    internal static (long Total, long Available)? Meminfo(string path = "/proc/meminfo")
    {
        if (!File.Exists(path)) return null;
        long? total = null, available = null;
        foreach (var line in File.ReadLines(path))
        {
            if (line.StartsWith("MemTotal:", StringComparison.Ordinal)) total = Kib(line);
            else if (line.StartsWith("MemAvailable:", StringComparison.Ordinal)) available = Kib(line);
        }
        return total is { } t && available is { } a ? (t, a) : null;
    }

    /// <summary>"MemTotal:       24576000 kB" -> bytes; null when the line is not in that form.</summary>
    private static long? Kib(string line)
    {
        var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return parts.Length == 3 && parts[2] == "kB" && long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var kib)
            ? kib * 1024 : null;
    }
}
