using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using ApbCluster.Client;
using ApbCluster.Contracts;
using ApbCluster.Engine;
using ApbCluster.Model.Generation;
using ApbCluster.Model.Layers;
using ApbCluster.Parallel.Collectives;
using ApbCluster.Parallel.Compression;
using ApbCluster.Parallel.Phase2;
using ApbCluster.Parallel.Plan;
using ApbCluster.Parallel.Serving;
using ApbCluster.Parallel.Strategies;
using TorchSharp;
using static TorchSharp.torch;

namespace ApbCluster.Cli.Commands;

/// <summary>
/// `apb ask`: a question about a long context, answered by H hosts with the chosen mode. By default the
/// hosts are virtual (threads of this process, sharing its device); with --cluster the query goes to a
/// running ApbCluster through its router.
/// </summary>
internal static class AskCommand
{
    public static Command Create()
    {
        var m = new ModelOptions();
        m.Model.Required = false;
        var attention = new PrefillAttentionCliOptions();
        var kv = new KvStoreCliOptions();
        var context = new Option<string?>("--context", "-c") { Description = "file holding the long context ('-' for stdin)" };
        var contextTokens = new Option<int?>("--context-tokens") { Description = "with --cluster, instead of --context: a synthetic context of exactly N token ids (seeded, ids 3..258, valid for every model), for benchmarks" };
        var contextSeed = new Option<int>("--context-seed") { Description = "seed of the synthetic context", DefaultValueFactory = _ => 1 };
        var question = new Option<string>("--question", "-q") { Description = "the question", Required = true };
        var hosts = new Option<int>("--hosts") { Description = "hosts (virtual, in this process)", DefaultValueFactory = _ => 4 };
        var mode = new Option<string>("--mode") { Description = "dense, ring, ulysses, star or apb", DefaultValueFactory = _ => "apb" };
        var anchor = new Option<int?>("--anchor") { Description = $"APB anchor length l_a (default block/{ApbPlan.DefaultAnchorDivisor})" };
        var passing = new Option<string?>("--passing") { Description = "APB passing length l_p per host (default block/8), or 'all' (lossless: equals dense)" };
        var compressor = new Option<string?>("--compressor") { Description = "retaining (trained heads: --retaining-heads or beside the model), query (training-free; default without heads) or random" };
        var heads = new Option<string?>("--retaining-heads") { Description = "trained retaining heads (safetensors with model.layers.{i}.self_attn.fc1/fc2.weight); optional, default: retaining_heads.safetensors beside the model" };
        var maxNew = new Option<int>("--max-new-tokens", "-n") { Description = "most tokens to generate", DefaultValueFactory = _ => 64 };
        var split = new Option<string?>("--split") { Description = "apb and star blocks: balanced (about equal prefill cost per host; the default) or equal" };
        var json = new Option<bool>("--json") { Description = "one JSON object on stdout" };
        var cluster = new Option<string?>("--cluster") { Description = "host:port of a router node: ask a running cluster instead" };
        var cmd = new Command("ask", "Answer a question about a long context across hosts (dense, ring, ulysses, star or apb).")
            { context, contextTokens, contextSeed, question, hosts, mode, anchor, passing, compressor, heads, split, maxNew, json, cluster };
        m.AddTo(cmd);
        attention.AddTo(cmd);
        kv.AddTo(cmd);
        cmd.SetAction(pr => CliRun.Guard(() =>
        {
            var parallelMode = Enum.TryParse<ParallelMode>(pr.GetValue(mode), ignoreCase: true, out var pm)
                ? pm : throw new CliUsageException($"--mode '{pr.GetValue(mode)}': expected dense, ring, ulysses, star or apb.");
            var criti = attention.Parse(pr);
            var shadowKv = kv.Parse(pr);
            var compressorKind = CompressorOption.Parse(pr.GetValue(compressor));
            if (criti is not null && parallelMode is ParallelMode.Ring or ParallelMode.Ulysses)
                throw new CliUsageException($"--prefill-attention critiprefill runs with --mode dense, apb or star, not {parallelMode.ToString().ToLowerInvariant()}.");
            if (pr.GetValue(maxNew) < 1) throw new CliUsageException($"--max-new-tokens {pr.GetValue(maxNew)}: must be at least 1.");
            if ((pr.GetValue(context) is null) == (pr.GetValue(contextTokens) is null))
                throw new CliUsageException("give the context with --context FILE, or (with --cluster) --context-tokens N.");
            if (pr.GetValue(cluster) is { } endpoint)
            {
                var ctx = pr.GetValue(contextTokens) is { } n
                    ? QueryContext.FromTokens(SyntheticContext(n, pr.GetValue(contextSeed)))
                    : QueryContext.FromText(ReadContext(pr.GetValue(context)!));
                return AskCluster(endpoint, ctx, pr.GetValue(question)!, parallelMode, pr.GetValue(anchor), pr.GetValue(passing),
                    compressorKind, SplitOf(pr.GetValue(split)), pr.GetValue(maxNew), pr.GetValue(json), criti, shadowKv);
            }
            if (pr.GetValue(contextTokens) is not null) throw new CliUsageException("--context-tokens is for --cluster; in-process runs read --context.");
            string doc = ReadContext(pr.GetValue(context)!);
            if (pr.GetValue(m.Model) is null) throw new CliUsageException("--model is required (or --cluster to ask a running cluster).");
            return AskInProcess(pr, m, doc, pr.GetValue(question)!, parallelMode, pr.GetValue(hosts), pr.GetValue(anchor),
                pr.GetValue(passing), compressorKind, SplitOf(pr.GetValue(split)),
                pr.GetValue(heads) ?? RetainingHeadsFile.Beside(pr.GetValue(m.Model)!), pr.GetValue(maxNew), pr.GetValue(json), criti, shadowKv);
        }));
        return cmd;
    }

    private static BlockSplit? SplitOf(string? text) => text is null ? null : BenchCommand.ParseSplit(text);

    private static int AskInProcess(ParseResult pr, ModelOptions m, string document, string question, ParallelMode mode, int hosts,
        int? anchor, string? passing, CompressorKind compressorKind, BlockSplit? split, string? headsFile, int maxNew, bool json,
        ApbCluster.Parallel.Kernels.CritiPrefillOptions? criti, ApbCluster.Model.KvStores.ShadowKvOptions? shadowKv)
    {
        if (hosts is < 1 or > MaxVirtualHosts)
            throw new CliUsageException($"--hosts {hosts}: in-process runs take 1 to {MaxVirtualHosts} virtual hosts (each is a thread with its own KV cache); use --cluster for more.");
        if (mode == ParallelMode.Dense && hosts != 1)
        {
            Console.Error.WriteLine($"dense attention runs on one host (--hosts {hosts} ignored)");
            hosts = 1;
        }
        using var loaded = m.Load(pr);
        var folder = loaded.Folder;
        if (File.Exists(Path.Combine(pr.GetValue(m.Model)!, DemoModelMarker)))
            Console.Error.WriteLine("note: this is the demo model, trained here to retrieve from synthetic documents, not a chat model. It answers "
                + "prompts in its training layout: a context file \"Context:\\n<document>\\n\" and --question $'Question: ...\\nAnswer:' (README).");
        var layout = PromptLayout.Build(folder.Tokenizer, folder.Template, document, question);
        if (PositionBudget.Check(layout.Document.Length, layout.Question.Length, maxNew, folder.Config.MaxPositionEmbeddings) is { } tooLong)
            throw new CliUsageException($"{tooLong}: shorten --context or lower --max-new-tokens.");
        if (hosts > layout.Document.Length)
            throw new CliUsageException($"--hosts {hosts}: the document has only {layout.Document.Length} tokens; each host needs at least one.");
        bool passAll = passing == "all";
        // Passing every earlier token leaves nothing for an anchor to add (and no room for one in the block).
        if (passAll && anchor is > 0) throw new CliUsageException($"--passing all passes every earlier token, so it takes no anchor: drop --anchor {anchor} (or give --anchor 0).");
        if (passAll) anchor = 0;
        int? passingLength = passAll || passing is null ? null
            : int.TryParse(passing, out int p) && p >= 0 ? p : throw new CliUsageException($"--passing '{passing}': a length or 'all'.");
        var plan = ServingPlan.Create(mode, hosts, layout.Document.Length, layout.Question.Length, layout.TemplateOffset,
            new PlanChoices { AnchorLength = anchor, PassingLength = passingLength, PassAll = passAll, Split = split }, folder.Config);
        // Lossless passing keeps every token whatever the scores, so any compressor will do; take the cheapest.
        ICompressor? CompressorOn(Device device) => mode != ParallelMode.Apb ? null
            : passAll ? new RandomCompressor(seed: 1)
            : Compressor(compressorKind, headsFile, loaded, device);
        var compressor = CompressorOn(loaded.Model.Device);
        Console.Error.WriteLine($"plan: {plan}{(compressor is null ? "" : ", compressor " + compressor.GetType().Name)}{(criti is null ? "" : ", prefill attention " + criti)}{(shadowKv is null ? "" : ", kv " + shadowKv)}");

        var eos = folder.Tokenizer.StopIds(folder.Config).Select(i => (long)i).ToArray();
        var request = new PrefillRequest(layout.Document, layout.Question) { CritiPrefill = criti };
        var stores = new List<(ApbCluster.Model.KvStores.ShadowKvStore Store, long Device, long Host)>();
        var build = KvStoreFactory.For(shadowKv);
        var phase2 = new Phase2Options
        {
            MaxNewTokens = maxNew, StopIds = eos, Timing = true,
            KvStore = build is null ? null : (shard, model) =>
            {
                var store = (ApbCluster.Model.KvStores.ShadowKvStore)build(shard, model);
                lock (stores) stores.Add((store, store.DeviceBytes, store.HostBytes)); // sizes now: Phase 2 disposes it
                return store;
            },
        };
        var clock = Stopwatch.StartNew();
        var runs = OneGpuPerHost(loaded, plan.Hosts)
            ? OnGpus(loaded, plan, mode, CompressorOn, request, phase2)
            : ParallelRun.InProcess(loaded.Model, plan, ParallelRun.For(mode, compressor), request, phase2);
        double totalMs = clock.Elapsed.TotalMilliseconds;
        foreach (var (shard, _) in runs) shard.Dispose();

        var result = runs[^1].Result;
        double questionMs = result.QuestionTime.TotalMilliseconds, decodeMs = result.StepTimes.Sum(t => t.TotalMilliseconds);
        double prefillMs = totalMs - questionMs - decodeMs;
        var ids = result.Tokens.Select(t => (int)t).ToList();
        string finish = ids.Count > 0 && eos.Contains(ids[^1]) ? "stop" : "length"; // OpenAI's words, as every surface
        string text = folder.Tokenizer.Decode(ids, skipSpecial: true);
        var hostPhases = runs.Select(r => r.Shard.Timings.Totals.ToDictionary(kv => kv.Key, kv => Math.Round(kv.Value.TotalMilliseconds, 1))).ToArray();

        if (json)
            Console.WriteLine(JsonSerializer.Serialize(new
            {
                prompt_token_ids = layout.Document.Concat(layout.Question),
                token_ids = ids,
                text,
                finish_reason = finish,
                prompt_tokens = layout.Length,
                generated_tokens = ids.Count,
                timings = new { prefill_ms = prefillMs, question_ms = questionMs, decode_ms = decodeMs, total_ms = totalMs, hosts = hostPhases },
                plan = PlanJson.From(plan, compressor),
            }));
        else Console.WriteLine(text);
        Console.Error.WriteLine($"{ids.Count} tokens ({finish}); prefill {prefillMs:F0} ms, question {questionMs:F0} ms, decode {decodeMs:F0} ms");
        for (int h = 0; h < hostPhases.Length; h++)
            Console.Error.WriteLine($"  host {h}: " + string.Join(", ", hostPhases[h].Select(kv => $"{kv.Key} {kv.Value:F0} ms")));
        foreach (var (store, device, host) in stores)
        {
            var (hits, fetched) = store.ChunkReuse;
            Console.Error.WriteLine($"  shadowkv store of {store.Length} tokens: {device / 1048576.0:F1} MiB on the device, {host / 1048576.0:F1} MiB in host memory" +
                (hits + fetched == 0 ? "" : $", V chunks reused from the previous step {100.0 * hits / (hits + fetched):F1}%"));
        }
        return CliRun.Ok;
    }

    /// <summary>CUDA with at least one GPU per host: each host gets its own GPU (and model copy), NCCL between them.</summary>
    private static bool OneGpuPerHost(LoadedModel loaded, int hosts) =>
        hosts > 1 && loaded.Model.Device.type == DeviceType.CUDA && cuda.device_count() >= hosts;

    private static (HostShard Shard, Phase2Result Result)[] OnGpus(LoadedModel loaded, ApbPlan plan, ParallelMode mode,
        Func<Device, ICompressor?> compressorOn, PrefillRequest request, Phase2Options phase2)
    {
        Console.Error.WriteLine($"hosts: one per GPU (cuda:0..{plan.Hosts - 1}), NCCL between them");
        var models = Enumerable.Range(0, plan.Hosts).Select(g => g == 0 ? loaded.Model
            : LlamaModel.FromCheckpoint(loaded.Folder.Config, loaded.Folder.Weights, new Device(DeviceType.CUDA, g), loaded.Model.Dtype)).ToArray();
        var ranks = NcclCollective.CreateAllInProcess(Enumerable.Range(0, plan.Hosts).ToArray(), TimeSpan.FromMinutes(2));
        try
        {
            return CollectiveRunner.Run(ranks, c =>
                ParallelRun.Host(c, models[c.Rank], plan, ParallelRun.For(mode, compressorOn(models[c.Rank].Device)), request, phase2));
        }
        finally
        {
            CollectiveRunner.DisposeAll(ranks);
            foreach (var m in models.Skip(1)) m.Dispose();
        }
    }

    /// <summary>In process, no choice means the trained heads when there are some, else the query-aware compressor.</summary>
    private static ICompressor Compressor(CompressorKind kind, string? headsFile, LoadedModel loaded, Device device)
    {
        if (kind == CompressorKind.Default) kind = headsFile != null ? CompressorKind.RetainingHeads : CompressorKind.QueryAware;
        var c = loaded.Folder.Config;
        switch (kind)
        {
            case CompressorKind.QueryAware: return new QueryAwareCompressor();
            case CompressorKind.Random: return new RandomCompressor(seed: 1);
            default:
                if (headsFile is null) throw new CliUsageException("--compressor retaining needs --retaining-heads FILE (trained heads in the published key layout).");
                return RetainingHeadsFile.Load(headsFile, c, device, loaded.Model.Dtype);
        }
    }

    /// <summary>N seeded token ids in 3..258 (the byte range of random models' codec; ordinary tokens of real vocabularies).</summary>
    internal static int[] SyntheticContext(int tokens, int seed)
    {
        if (tokens < 1) throw new CliUsageException($"--context-tokens {tokens}: must be at least 1.");
        var rng = new Random(seed);
        return Enumerable.Range(0, tokens).Select(_ => 3 + rng.Next(256)).ToArray();
    }

    private static int AskCluster(string endpoint, QueryContext context, string question, ParallelMode mode, int? anchor, string? passing,
        CompressorKind compressor, BlockSplit? split, int maxNew, bool json, ApbCluster.Parallel.Kernels.CritiPrefillOptions? criti,
        ApbCluster.Model.KvStores.ShadowKvOptions? shadowKv)
    {
        if (passing == "all") throw new CliUsageException("--passing all is for in-process runs; give a length with --cluster.");
        ApbOptions? apb = null;
        if (mode == ParallelMode.Apb && (anchor != null || passing != null || compressor != CompressorKind.Default))
        {
            // The router's ApbOptions carry explicit lengths; without any option it plans the paper's defaults.
            if (anchor is null || passing is null || !int.TryParse(passing, out int p) || p < 0)
                throw new CliUsageException("with --cluster, give --anchor N and --passing N together (or neither, for the paper's defaults).");
            apb = new ApbOptions(anchor.Value, p, compressor);
        }
        var attention = QueryPlanning.ToAttention(mode);
        var splitMode = split switch { BlockSplit.Balanced => BlockSplitMode.Balanced, BlockSplit.Equal => BlockSplitMode.Equal, _ => BlockSplitMode.Default };
        // Without --prefill-attention the router's setting applies (apb.router.prefill-attention).
        var prefillAttention = criti is null ? null
            : new PrefillAttentionOptions(PrefillAttentionKind.CritiPrefill, criti.Budget, criti.Segment, criti.Block, criti.Threshold);
        // Without --kv the router's setting applies (apb.router.kv).
        var kvStore = shadowKv is null ? null
            : new KvStoreOptions(KvStoreKind.ShadowKv, shadowKv.Rank, shadowKv.Chunk, shadowKv.Budget, shadowKv.Outliers, shadowKv.Local,
                shadowKv.Values == ApbCluster.Model.KvStores.ShadowKvValues.Host);
        var query = new SubmitQuery(Guid.NewGuid().ToString("N"), context, question,
            Contracts.GenerationOptions.Greedy(maxNew), attention, apb, splitMode, EchoPrompt: json, PrefillAttention: prefillAttention,
            KvStore: kvStore);
        return AskClusterAsync(endpoint, query, json).GetAwaiter().GetResult();
    }

    /// <summary>
    /// Submits through a ClusterQueryClient and streams the events. The client is connected first (a status round
    /// trip to the router), so the client-side times (from the submit to acceptance, first prefill progress, first
    /// token and the end) are the cluster's, not the connection's. With --json the final object carries them under
    /// "client" next to the router's "timings"; a failure prints {"error", "failing_host", "client", "unix_ms"}.
    /// </summary>
    private static async Task<int> AskClusterAsync(string endpoint, SubmitQuery query, bool json)
    {
        // The client's ActorSystem logs (warnings) to Console.Out: send those to stderr, keep stdout for the answer.
        var stdout = Console.Out;
        Console.SetOut(Console.Error);
        try { return await AskClusterAsync(endpoint, query, json, stdout); }
        finally { Console.SetOut(stdout); }
    }

    private static async Task<int> AskClusterAsync(string endpoint, SubmitQuery query, bool json, TextWriter stdout)
    {
        await using var client = ClusterQueryClient.Connect([endpoint]);
        try { await client.StatusAsync(TimeSpan.FromSeconds(15)); }
        catch (Exception) { /* not reachable yet: the query itself reports it (idle timeout) */ }
        var text = new System.Text.StringBuilder();
        var layersDone = new SortedDictionary<string, int>(StringComparer.Ordinal);
        QueryPlanSummary? plan = null;
        double? acceptedMs = null, progressMs = null, firstTokenMs = null;
        var clock = Stopwatch.StartNew();
        long submittedUnixMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        object Client() => new
        {
            submitted_unix_ms = submittedUnixMs, accepted_ms = acceptedMs, first_prefill_progress_ms = progressMs,
            ttft_ms = firstTokenMs, total_ms = clock.Elapsed.TotalMilliseconds,
        };
        object? Plan() => plan is null ? null : PlanJson.From(plan);
        void Failed(string reason, string? host)
        {
            Console.Error.WriteLine($"\nerror: {reason}");
            if (json) stdout.WriteLine(JsonSerializer.Serialize(new { error = reason, failing_host = host, client = Client(), plan = Plan(), unix_ms = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() }));
        }
        await foreach (var e in client.AskAsync(query))
        {
            switch (e)
            {
                case QueryAccepted a:
                    acceptedMs ??= clock.Elapsed.TotalMilliseconds;
                    plan = a.Plan;
                    Console.Error.WriteLine($"accepted: hosts {string.Join(", ", a.Plan.HostsInRingOrder)}, blocks [{string.Join(",", a.Plan.BlockLengths)}], l_a {a.Plan.AnchorLength}, l_p {a.Plan.PassingLength}");
                    break;
                case PrefillProgress p:
                    progressMs ??= clock.Elapsed.TotalMilliseconds;
                    layersDone[p.Host] = p.Layer;
                    Console.Error.Write("\r" + ProgressBar(layersDone, p.Layers));
                    break;
                case TokenChunk t:
                    firstTokenMs ??= clock.Elapsed.TotalMilliseconds;
                    text.Append(t.Text);
                    if (!json) stdout.Write(t.Text);
                    break;
                case QueryCompleted c:
                    Console.Error.WriteLine();
                    // The fields of in-process `ask --json`, plus the client's own times.
                    if (json) stdout.WriteLine(JsonSerializer.Serialize(new
                    {
                        prompt_token_ids = c.PromptTokenIds, token_ids = c.TokenIds, text = c.Answer,
                        finish_reason = c.FinishReason.ToOpenAi(), prompt_tokens = c.PromptTokens,
                        generated_tokens = c.GeneratedTokens, timings = c.Timings, client = Client(), plan = Plan(),
                        // On the router's clock (one per router), so that several queries' overlap can be read off.
                        queue_ms = c.Timings.QueueMs, dispatched_ms = c.Clock?.DispatchedMs, started_ms = c.Clock?.StartedMs, finished_ms = c.Clock?.FinishedMs,
                    }));
                    else stdout.WriteLine();
                    return CliRun.Ok;
                case QueryFailed f:
                    Failed($"query failed{(f.FailingHost is null ? "" : " on " + f.FailingHost)}: {f.Reason}", f.FailingHost);
                    return CliRun.Failed;
                case RouterBusy:
                    Failed("the router is busy (its queue is full); try again later.", null);
                    return CliRun.Failed;
                case QueryCancelled:
                    Failed("the query was cancelled.", null);
                    return CliRun.Failed;
            }
        }
        Failed("the cluster ended the query without an answer.", null);
        return CliRun.Failed;
    }

    /// <summary>"prefill [##########..........] 16/32 layers (slowest of 4 hosts)": Phase 1 ends with its slowest host.</summary>
    internal static string ProgressBar(IReadOnlyDictionary<string, int> layersDone, int layers)
    {
        const int width = 30;
        int slowest = layersDone.Count == 0 ? 0 : layersDone.Values.Min();
        int filled = layers <= 0 ? 0 : width * slowest / layers;
        return $"prefill [{new string('#', filled)}{new string('.', width - filled)}] {slowest}/{layers} layers (slowest of {layersDone.Count} hosts) ";
    }

    private static string ReadContext(string path) => TextInput.Read("--context", path);

    private const int MaxVirtualHosts = 64;

    /// <summary>`apb train demo-model` writes it beside the weights; no Hugging Face checkpoint has one.</summary>
    private const string DemoModelMarker = "training.json";
}
