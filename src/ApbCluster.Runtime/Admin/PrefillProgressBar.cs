using ApbCluster.Contracts;

namespace ApbCluster.Runtime.Admin;

/// <summary>One text line per progress update: a bar per host, e.g. "h0 [#####-----] 16/32".</summary>
public sealed class PrefillProgressBar(int width = 20)
{
    private readonly SortedDictionary<string, (int Layer, int Layers)> _hosts = new(StringComparer.Ordinal);

    public string Update(PrefillProgress p)
    {
        _hosts[p.Host] = (p.Layer, p.Layers);
        return "prefill " + string.Join("  ", _hosts.Select(h => $"{h.Key} {Bar(h.Value.Layer, h.Value.Layers)} {h.Value.Layer}/{h.Value.Layers}"));
    }

    private string Bar(int layer, int layers)
    {
        var filled = layers <= 0 ? 0 : Math.Clamp(layer * width / layers, 0, width);
        return "[" + new string('#', filled) + new string('-', width - filled) + "]";
    }
}
