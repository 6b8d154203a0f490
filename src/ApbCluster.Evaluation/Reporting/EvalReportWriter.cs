using System.Globalization;
using System.Text;
using System.Text.Json;
using ApbCluster.Evaluation.Running;

namespace ApbCluster.Evaluation.Reporting;

/// <summary>Writes an eval run as eval.json (every row and cell), eval.md (accuracy tables) and eval.png
/// (mean accuracy over the tasks by length, one line per mode and H), in the style of the bench report.</summary>
public static class EvalReportWriter
{
    public static IReadOnlyList<string> Write(EvalReport report, string dir)
    {
        Directory.CreateDirectory(dir);
        var json = Path.Combine(dir, "eval.json");
        File.WriteAllText(json, JsonSerializer.Serialize(report, new JsonSerializerOptions { WriteIndented = true }));
        var md = Path.Combine(dir, "eval.md");
        File.WriteAllText(md, Markdown(report));
        var png = Path.Combine(dir, "eval.png");
        Plot(report, png);
        return [json, md, png];
    }

    /// <summary>Reads back the eval.json of a folder written by <see cref="Write"/> (or the file itself).</summary>
    public static EvalReport Read(string dirOrFile)
    {
        var path = Directory.Exists(dirOrFile) ? Path.Combine(dirOrFile, "eval.json") : dirOrFile;
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no eval.json there (expected an `apb eval --out` folder).", path);
        try
        {
            return JsonSerializer.Deserialize<EvalReport>(File.ReadAllText(path))
                ?? throw new InvalidDataException($"{path}: empty report.");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not an eval report ({e.Message}).", e);
        }
    }

    /// <summary>One table: a row per task x length x H, a column per mode (accuracy %), and an average row per length x H.</summary>
    public static string Markdown(EvalReport r)
    {
        var inv = CultureInfo.InvariantCulture;
        var modes = r.Cells.Select(c => c.Mode).Distinct().ToList();
        var sb = new StringBuilder();
        sb.AppendLine($"# Evaluation: {r.Model}, {r.Hardware}");
        sb.AppendLine();
        sb.AppendLine($"Command: `{r.Command}`  ");
        sb.AppendLine($"Started: {r.Started:u}  ");
        sb.AppendLine($"Samples per cell: {EvalReport.SamplesPerCell(r.Cells)}. Accuracy in % (exact match).");
        sb.AppendLine();
        sb.AppendLine("| task | length | hosts | " + string.Join(" | ", modes) + " |");
        sb.AppendLine("|---|---:|---:|" + string.Concat(modes.Select(_ => "---:|")));
        var byKey = r.Cells.ToDictionary(c => (c.Task, c.Length, c.Hosts, c.Mode));
        foreach (var g in r.Cells.GroupBy(c => (c.Length, c.Hosts)).OrderBy(g => g.Key.Length).ThenBy(g => g.Key.Hosts))
        {
            foreach (var task in g.Select(c => c.Task).Distinct())
                sb.AppendLine($"| {task} | {g.Key.Length} | {g.Key.Hosts} | " +
                    string.Join(" | ", modes.Select(m => byKey.TryGetValue((task, g.Key.Length, g.Key.Hosts, m), out var c) ? c.Accuracy.ToString("F1", inv) : "")) + " |");
            sb.AppendLine($"| **average** | {g.Key.Length} | {g.Key.Hosts} | " +
                string.Join(" | ", modes.Select(m => g.Where(c => c.Mode == m).Select(c => c.Accuracy).DefaultIfEmpty(double.NaN).Average().ToString("F1", inv))) + " |");
        }
        sb.AppendLine();
        foreach (var n in r.Notes) sb.AppendLine("- " + n);
        // The goals are stated against dense and star: say how sure each difference is, on the same samples.
        DifferenceTable(sb, r, "dense", "every mode", _ => true);
        DifferenceTable(sb, r, "star", "the APB modes", m => m.StartsWith("apb", StringComparison.Ordinal));
        // CritiPrefill's goal is stated against its base mode (apb-criti is apb-retaining with pruned local attention).
        DifferenceTable(sb, r, "apb-retaining", "CritiPrefill inside APB", m => m == "apb-criti");
        // ShadowKV's goal is stated against its base modes (within 1 point of dense, and of apb-retaining).
        DifferenceTable(sb, r, "apb-retaining", "ShadowKV inside APB", m => m == "apb-shadowkv");
        return sb.ToString();
    }

    /// <summary>A table of paired differences against <paramref name="reference"/> (a row per length x H, a column per
    /// mode), or nothing when the report lacks the reference or anything to compare with it.</summary>
    private static void DifferenceTable(StringBuilder sb, EvalReport r, string reference, string what, Func<string, bool> modes)
    {
        var diffs = PairedDifferences.Against(r.Rows, reference, modes);
        if (diffs.Count == 0) return;
        var cols = diffs.Select(d => d.Mode).Distinct().ToList();
        var byKey = diffs.ToDictionary(d => (d.Length, d.Hosts, d.Mode));
        sb.AppendLine();
        sb.AppendLine($"## {what} minus {reference}, on the same samples");
        sb.AppendLine();
        sb.AppendLine("Accuracy points over all tasks (paired per task and sample; ± is the 95 % interval).");
        sb.AppendLine();
        sb.AppendLine("| length | hosts | " + string.Join(" | ", cols) + " |");
        sb.AppendLine("|---:|---:|" + string.Concat(cols.Select(_ => "---:|")));
        foreach (var (length, hosts) in diffs.Select(d => (d.Length, d.Hosts)).Distinct().OrderBy(k => k.Length).ThenBy(k => k.Hosts))
            sb.AppendLine($"| {length} | {hosts} | " +
                string.Join(" | ", cols.Select(m => byKey.TryGetValue((length, hosts, m), out var d) ? d.Text() : "")) + " |");
    }

    private static void Plot(EvalReport r, string path)
    {
        var plot = new ScottPlot.Plot();
        foreach (var group in r.Cells.GroupBy(c => (c.Mode, c.Hosts)).OrderBy(g => g.Key.Mode).ThenBy(g => g.Key.Hosts))
        {
            var pts = group.GroupBy(c => c.Length).OrderBy(g => g.Key).Select(g => (X: g.Key / 1024.0, Y: g.Average(c => c.Accuracy))).ToArray();
            var line = plot.Add.Scatter(pts.Select(p => p.X).ToArray(), pts.Select(p => p.Y).ToArray());
            line.LegendText = $"{group.Key.Mode} H={group.Key.Hosts}";
        }
        plot.Title($"Accuracy (mean over tasks), {r.Model}");
        plot.XLabel("prompt length (K tokens)");
        plot.YLabel("accuracy (%)");
        plot.Axes.SetLimitsY(-5, 105);
        plot.ShowLegend();
        plot.SavePng(path, 900, 540);
    }
}
