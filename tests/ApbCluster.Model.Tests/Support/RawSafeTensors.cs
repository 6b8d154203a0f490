using System.Text;

namespace ApbCluster.Model.Tests.Support;

/// <summary>Writes safetensors files byte by byte, to test headers that lie.</summary>
public static class RawSafeTensors
{
    public static void Write(string path, string headerJson, int dataBytes, ulong? claimedHeaderLength = null)
    {
        var header = Encoding.UTF8.GetBytes(headerJson);
        using var fs = File.Create(path);
        fs.Write(BitConverter.GetBytes(claimedHeaderLength ?? (ulong)header.Length));
        fs.Write(header);
        fs.Write(new byte[dataBytes]);
    }
}
