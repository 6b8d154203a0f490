using System.Diagnostics;
using ApbCluster.Model.Config;
using ApbCluster.Model.Layers;
using ApbCluster.NativeInterop;
using ApbCluster.Parallel.Collectives;
using ApbCluster.Parallel.Compression;
using ApbCluster.Parallel.Phase2;
using ApbCluster.Parallel.Plan;
using ApbCluster.Parallel.Strategies;
using static TorchSharp.torch;

namespace ApbCluster.Cli.Commands;

/// <summary>
/// `apb demo --exactness`: the machinery with nothing trained. A small Llama-architecture model with seeded random
/// weights reads a long random prompt on H virtual hosts with every mode; the exact modes (ring, ulysses, lossless
/// apb) must produce dense's tokens, and apb/star with the paper's lengths show how much work compression saves.
/// Random weights carry no meaning: this shows the plan, the timings and the exactness, not answer quality.
/// </summary>
internal static class ExactnessDemo
{
    // Heads divisible by 4 so Ulysses runs on the default 4 hosts.
    private static readonly ModelConfig DemoShape = ModelShapes.Get("tiny") with { NumHeads = 8, NumKvHeads = 4, NumLayers = 4 };

    public static int Run(int n, int hosts, int steps)
    {
        if (n < 64 * hosts) throw new CliUsageException($"--tokens {n}: need at least {64 * hosts} for {hosts} hosts.");
        TorchRuntime.EnsureLoaded("cpu");
        using var model = LlamaModel.CreateRandom(DemoShape with { MaxPositionEmbeddings = n + 1024 }, CPU, ScalarType.Float32, seed: 7);
        var rng = new Random(7);
        var document = Enumerable.Range(0, n).Select(_ => (long)rng.Next(3, DemoShape.VocabSize)).ToArray();
        var question = Enumerable.Range(0, 24).Select(_ => (long)rng.Next(3, DemoShape.VocabSize)).ToArray();
        Console.WriteLine($"ApbCluster exactness demo: {DemoShape.NumLayers}-layer Llama-architecture model (random weights), {n}-token prompt + {question.Length}-token question, {hosts} virtual hosts on the CPU ({Environment.ProcessorCount} cores)");
        Console.WriteLine();

        var cases = new DemoCase[]
        {
            new("dense", ParallelMode.Dense, 1, Exact: true),
            new("ring", ParallelMode.Ring, hosts, Exact: true),
            new("ulysses", ParallelMode.Ulysses, hosts, Exact: true),
            new("apb lossless", ParallelMode.Apb, hosts, Exact: true, AnchorLength: 0, PassAll: true, Compressor: new RandomCompressor(1)),
            new("apb", ParallelMode.Apb, hosts, Exact: false, Compressor: new QueryAwareCompressor()),
            new("star", ParallelMode.Star, hosts, Exact: false),
        };
        long[]? dense = null;
        var demoClock = Stopwatch.StartNew();
        ApbPlan? lossyApb = null;
        Console.WriteLine($"{"mode",-13} {"hosts",5} {"l_a",5} {"l_p",5} {"prefill ms",11} {"decode ms",10} {"sent",9}  tokens vs dense");
        foreach (var c in cases)
        {
            var plan = ApbPlan.Create(new PlanRequest
            {
                DocumentLength = n, QuestionLength = question.Length, Hosts = c.Hosts, Mode = c.Mode,
                AnchorLength = c.AnchorLength, PassAll = c.PassAll, TemplateOffset = 0,
                NumHeads = DemoShape.NumHeads, NumKvHeads = DemoShape.NumKvHeads,
            });
            var traffic = new CollectiveTraffic();
            var clock = Stopwatch.StartNew();
            var runs = ParallelRun.InProcess(model, plan, ParallelRun.For(c.Mode, c.Compressor), new PrefillRequest(document, question),
                new Phase2Options { MaxNewTokens = steps, StopIds = [] }, traffic: traffic);
            double total = clock.Elapsed.TotalMilliseconds;
            foreach (var (shard, _) in runs) shard.Dispose();
            var r = runs[^1].Result;
            double decode = r.QuestionTime.TotalMilliseconds + r.StepTimes.Sum(t => t.TotalMilliseconds);
            dense ??= r.Tokens;
            int same = r.Tokens.Zip(dense).Count(p => p.First == p.Second);
            string verdict = c.Name == "dense" ? "(reference)"
                : c.Exact ? (same == dense.Length ? $"identical ({same}/{dense.Length}), as it must be" : $"DIFFERENT ({same}/{dense.Length}): exactness broken")
                : $"{same}/{dense.Length} equal (lossy: see below)";
            Console.WriteLine($"{c.Name,-13} {plan.Hosts,5} {plan.AnchorLength,5} {plan.PassingLength,5} {total - decode,11:F0} {decode,10:F0} {ByteSize.Format(traffic.TotalSent),9}  {verdict}");
            if (c.Exact && same != dense.Length) return CliRun.Failed;
            if (c.Name == "apb") lossyApb = plan;
        }
        Console.WriteLine();
        Console.WriteLine("sent: bytes all hosts sent each other (prefill and decode). Why the lossy modes differ from dense (in prefill only; the question");
        Console.WriteLine("and the generated tokens then attend every host's keys and values exactly):");
        Console.WriteLine("  star: a host computes its block seeing only the anchor and its own block, none of the blocks before it.");
        if (lossyApb is { } apbPlan)
            Console.WriteLine($"  apb: a host also sees {apbPlan.PassingLength} tokens (l_p) of each earlier block, those its compressor kept, not the whole block. " +
                "apb lossless passes every token with no anchor (--passing all) and so equals dense.");
        Console.WriteLine($"Exact modes reproduce dense attention token for token; apb and star trade exactness for less work. Total {demoClock.Elapsed.TotalSeconds:F1} s.");
        Console.WriteLine("`apb demo` (without --exactness) shows the same modes answering questions with the trained demo model.");
        return CliRun.Ok;
    }
}

/// <summary>One row of the demo: a mode, its hosts, and whether it must reproduce dense exactly.</summary>
internal sealed record DemoCase(string Name, ParallelMode Mode, int Hosts, bool Exact,
    int? AnchorLength = null, bool PassAll = false, ICompressor? Compressor = null);
