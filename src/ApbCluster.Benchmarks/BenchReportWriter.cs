using System.Globalization;
using System.Text;
using System.Text.Json;

namespace ApbCluster.Benchmarks;

/// <summary>Writes a bench run as bench.json (raw), bench.md (tables) and bench.png (tokens/s by length and mode).</summary>
public static class BenchReportWriter
{
    public static IReadOnlyList<string> Write(BenchReport report, string dir)
    {
        Directory.CreateDirectory(dir);
        var json = Path.Combine(dir, "bench.json");
        File.WriteAllText(json, JsonSerializer.Serialize(report, new JsonSerializerOptions { WriteIndented = true }));
        var md = Path.Combine(dir, "bench.md");
        File.WriteAllText(md, Markdown(report));
        var png = Path.Combine(dir, "bench.png");
        Plot(report, png);
        return [json, md, png];
    }

    public static string Markdown(BenchReport r)
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine($"# Benchmark: {r.Shape} ({r.Dtype}), {r.Hardware}");
        sb.AppendLine();
        sb.AppendLine($"Command: `{r.Command}`  ");
        sb.AppendLine($"Started: {r.Started:u}");
        sb.AppendLine();
        if (r.Prefill.Count > 0)
        {
            var dense = r.Prefill.Where(p => p.Mode == "dense").ToDictionary(p => p.Tokens);
            var phases = r.Prefill.SelectMany(p => p.PhaseMs.Keys).Distinct().ToList();
            bool ttft = r.Prefill.Any(p => p.TtftSeconds is not null);
            sb.AppendLine("## Prefill");
            sb.AppendLine();
            sb.Append("| mode | tokens | hosts | GPUs | seconds (best) | tokens/s | speed-up vs dense | GPU memory GiB | MiB moved (passing) |");
            if (ttft) sb.Append(" TTFT s (best) |");
            foreach (var ph in phases) sb.Append($" {ph} ms |");
            sb.AppendLine();
            sb.Append("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
            if (ttft) sb.Append("---:|");
            foreach (var _ in phases) sb.Append("---:|");
            sb.AppendLine();
            foreach (var p in r.Prefill.OrderBy(p => p.Tokens).ThenBy(p => ModeOrder(p.Mode)))
            {
                string speedup = dense.TryGetValue(p.Tokens, out var d) ? (d.Seconds / p.Seconds).ToString("F2", inv) + "x" : "";
                sb.Append(inv, $"| {p.Mode} | {p.Tokens} | {p.Hosts} | {p.Gpus} | {p.Seconds:F3} | {p.TokensPerSecond:F0} | {speedup} | {p.PeakGpuGiB:F1} | {Moved(p)} |");
                if (ttft) sb.Append(p.TtftSeconds is { } t ? string.Format(inv, " {0:F3} |", t) : " |");
                foreach (var ph in phases) sb.Append(p.PhaseMs.TryGetValue(ph, out var v) ? string.Format(inv, " {0:F0} |", v) : " |");
                sb.AppendLine();
            }
            sb.AppendLine();
        }
        if (r.Decode.Count > 0)
        {
            sb.AppendLine("## Decode");
            sb.AppendLine();
            sb.AppendLine("| mode | context | steps | ms/token (median) | ms/token (mean) |");
            sb.AppendLine("|---|---:|---:|---:|---:|");
            foreach (var d in r.Decode)
                sb.AppendLine(string.Format(inv, "| {0} | {1} | {2} | {3:F2} | {4:F2} |", d.Mode, d.Context, d.Steps, d.MsPerTokenMedian, d.MsPerTokenMean));
            sb.AppendLine();
        }
        foreach (var n in r.Notes) sb.AppendLine("- " + n);
        return sb.ToString();
    }

    /// <summary>Bytes all hosts' collectives sent in one prefill, and how much of it was APB's passing.</summary>
    private static string Moved(PrefillMeasurement p)
    {
        if (p.Plan is null || !p.Plan.TryGetValue("collective_bytes_sent", out var all)) return "";
        double mib = Convert.ToDouble(all, CultureInfo.InvariantCulture) / (1 << 20);
        double passing = p.Plan.TryGetValue("passing_bytes_sent", out var pb) ? Convert.ToDouble(pb, CultureInfo.InvariantCulture) / (1 << 20) : 0;
        return string.Format(CultureInfo.InvariantCulture, "{0:F1} ({1:F1})", mib, passing);
    }

    private static readonly string[] Modes = ["dense", "ring", "ulysses", "star", "apb"];

    private static int ModeOrder(string mode) => Array.IndexOf(Modes, mode) is var i and >= 0 ? i : Modes.Length;

    private static void Plot(BenchReport r, string path)
    {
        var plot = new ScottPlot.Plot();
        foreach (var group in r.Prefill.GroupBy(p => p.Mode))
        {
            var pts = group.OrderBy(p => p.Tokens).ToArray();
            var line = plot.Add.Scatter(pts.Select(p => p.Tokens / 1024.0).ToArray(), pts.Select(p => p.TokensPerSecond).ToArray());
            line.LegendText = group.Key;
        }
        plot.Title($"Prefill throughput, {r.Shape}, {r.Hardware}");
        plot.XLabel("prompt length (K tokens)");
        plot.YLabel("tokens / s");
        plot.ShowLegend();
        plot.SavePng(path, 900, 540);
    }
}
