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
            bool projected = r.Prefill.Any(p => Value(p, "projected_seconds_one_gpu_per_host") is not null);
            sb.Append("| mode | tokens | hosts | GPUs | split | blocks | seconds (best) | seconds (median) | tokens/s | speed-up vs dense |");
            if (projected) sb.Append(" projected s, a GPU per host |");
            sb.Append(" GPU memory GiB | MiB moved (passing) | host wait ms |");
            if (ttft) sb.Append(" TTFT s (best) | TTFT s (median) |");
            foreach (var ph in phases) sb.Append($" {ph} ms |");
            sb.AppendLine();
            sb.Append("|---|---:|---:|---:|---|---|---:|---:|---:|---:|");
            if (projected) sb.Append("---:|");
            sb.Append("---:|---:|---|");
            if (ttft) sb.Append("---:|---:|");
            foreach (var _ in phases) sb.Append("---:|");
            sb.AppendLine();
            foreach (var p in r.Prefill.OrderBy(p => p.Tokens).ThenBy(p => ModeOrder(p.Mode)))
            {
                string speedup = dense.TryGetValue(p.Tokens, out var d) ? (d.Seconds / p.Seconds).ToString("F2", inv) + "x" : "";
                sb.Append(inv, $"| {p.Mode} | {p.Tokens} | {p.Hosts} | {p.Gpus} | {Value(p, "split")} | {List(p, "blocks")} | {p.Seconds:F3} | {p.MedianSeconds:F3} | {p.TokensPerSecond:F0} | {speedup} |");
                if (projected) sb.Append($" {Value(p, "projected_seconds_one_gpu_per_host")} |");
                sb.Append(inv, $" {p.PeakGpuGiB:F1} | {Moved(p)} | {List(p, "host_wait_ms")} |");
                if (ttft) sb.Append(p.TtftSeconds is { } t ? string.Format(inv, " {0:F3} | {1:F3} |", t, p.MedianTtftSeconds) : " | |");
                foreach (var ph in phases) sb.Append(p.PhaseMs.TryGetValue(ph, out var v) ? string.Format(inv, " {0:F0} |", v) : " |");
                sb.AppendLine();
            }
            sb.AppendLine();
            if (projected)
                sb.AppendLine("Hosts sharing a GPU: seconds are their sum of work on it; in the phase run they take turns, so \"projected\" is " +
                    "what one GPU per host would take (each collective step's slower host) and the passing column includes the other hosts' turns.");
            sb.AppendLine("Seconds: wall time of the timed repeats. Phases: a separate run with per-phase timers, each phase's slowest host. " +
                "Host wait: per host, the time it would idle at the collectives for the slowest host. GPU memory: the high-water of the process " +
                "that ran only this configuration (weights included).");
            sb.AppendLine();
        }
        if (r.Decode.Count > 0)
        {
            sb.AppendLine("## Decode");
            sb.AppendLine();
            sb.AppendLine("| mode | kv | context | batch | fits | steps | ms/step (median) | ms/step (mean) | tokens/s | GPU GiB | store GiB (host) | profile ms/step |");
            sb.AppendLine("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
            foreach (var d in r.Decode)
                sb.AppendLine(string.Format(inv, "| {0} | {1} | {2} | {3} | {10} | {4} | {5:F2} | {6:F2} | {7:F0} | {8:F1} | {11} | {9} |", d.Mode, d.Kv, d.Context, d.Batch, d.Steps,
                    d.MsPerTokenMedian, d.MsPerTokenMean, d.TokensPerSecond, d.GpuGiB,
                    d.PhaseMs is null ? "" : string.Join(", ", d.PhaseMs.Select(kv => string.Format(inv, "{0} {1:F2}", kv.Key, kv.Value))),
                    d.MaxResident, d.Kv == "full" ? "" : string.Format(inv, "{0:F1} ({1:F1})", d.StoreGiB, d.HostGiB)));
            sb.AppendLine();
            sb.AppendLine("A step gives one token to each of the batch's sequences (each with its own context of the given length); " +
                "tokens/s = batch / median step time. Each step includes reading the new ids back to the host, as real generation must. " +
                "Profile: separate steps that synchronise the device around each phase, so each phase shows the longer of its host launch time and its device time. " +
                "Fits: sequences of that context that fit beside the weights while one more prompt can be prefilled (an estimate from free memory).");
            sb.AppendLine();
        }
        if (r.Serve.Count > 0)
        {
            sb.AppendLine("## Concurrent queries (APB, virtual hosts on one device)");
            sb.AppendLine();
            sb.AppendLine("| hosts | queries | context | steps | batch decode | decode tokens/s (all queries) | ms/token per query (median) | shared calls / batched calls | widest | decodes overlapped | GPU GiB |");
            sb.AppendLine("|---:|---:|---:|---:|---|---:|---:|---:|---:|---|---:|");
            foreach (var s in r.Serve)
                sb.AppendLine(string.Format(inv, "| {0} | {1} | {2} | {3} | {4} | {5:F1} | {6:F2} | {7} / {8} | {9} | {10} | {11:F1} |", s.Hosts, s.Queries, s.Context, s.Steps,
                    s.BatchDecode ? string.Format(inv, "on, wait {0:0.##} ms", s.BatchWaitMs) : "off", s.DecodeTokensPerSecond, s.MsPerTokenMedian, s.SharedCalls, s.Calls, s.Widest, s.DecodesOverlapped ? "yes" : "no", s.GpuGiB));
            sb.AppendLine();
            sb.AppendLine("Every query runs prefill then Phase 2 on every host (each with its own collectives and KV), all queries started " +
                "together. Decode tokens/s: tokens after each query's first, over the window from the first query's first token to the last " +
                "query's last. Batch decode on: each host's running queries share each layer's projections and MLP (DecodeBatcher).");
            sb.AppendLine();
        }
        foreach (var n in r.Notes) sb.AppendLine("- " + n);
        return sb.ToString();
    }

    /// <summary>Bytes all hosts' collectives sent in one prefill, and how much of it was APB's passing.</summary>
    private static string Moved(PrefillMeasurement p)
    {
        if (Number(Value(p, "collective_bytes_sent")) is not { } all) return "";
        double passing = Number(Value(p, "passing_bytes_sent")) ?? 0;
        return string.Format(CultureInfo.InvariantCulture, "{0:F1} ({1:F1})", all / (1 << 20), passing / (1 << 20));
    }

    /// <summary>A plan entry as text (a report read back from JSON holds JsonElements, a fresh one CLR values).</summary>
    private static string? Value(PrefillMeasurement p, string key) =>
        p.Plan is not null && p.Plan.TryGetValue(key, out var v) ? v switch
        {
            JsonElement { ValueKind: JsonValueKind.String } e => e.GetString(),
            IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
            _ => v.ToString(),
        } : null;

    private static string List(PrefillMeasurement p, string key)
    {
        if (p.Plan is null || !p.Plan.TryGetValue(key, out var v)) return "";
        var items = v switch
        {
            JsonElement { ValueKind: JsonValueKind.Array } e => e.EnumerateArray().Select(x => x.GetRawText()),
            System.Collections.IEnumerable list => list.Cast<object>().Select(x => Convert.ToString(x, CultureInfo.InvariantCulture) ?? ""),
            _ => [v.ToString() ?? ""],
        };
        return string.Join(", ", items);
    }

    private static double? Number(string? text) => double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var x) ? x : null;

    private static readonly string[] Modes = ["dense", "dense-criti", "ring", "ulysses", "star", "apb", "apb-criti"];

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
