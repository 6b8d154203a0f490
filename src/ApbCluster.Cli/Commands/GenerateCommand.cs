using System.CommandLine;
using System.Text.Json;
using ApbCluster.Model.Generation;
using ApbCluster.Model.Tokenization;
using ApbCluster.Parallel.Strategies;

namespace ApbCluster.Cli.Commands;

/// <summary>`apb generate`: dense generation on one device, streamed to stdout; with --kv shadowkv decoding reads a
/// ShadowKV store of the prompt (<see cref="ShadowKvGenerate"/>).</summary>
internal static class GenerateCommand
{
    public static Command Create()
    {
        var m = new ModelOptions();
        var prompt = new Option<string?>("--prompt", "-p") { Description = "prompt text (tokenized as Hugging Face's tokenizer does, special tokens included)" };
        var promptFile = new Option<string?>("--prompt-file") { Description = "read the prompt from a file ('-' for stdin)" };
        var chat = new Option<bool>("--chat") { Description = "wrap the prompt as a user message in the model's chat template" };
        var g = new GenerationCliOptions();
        var attention = new PrefillAttentionCliOptions();
        var kv = new KvStoreCliOptions();
        var json = new Option<bool>("--json") { Description = "one JSON object on stdout instead of streamed text" };
        var cmd = new Command("generate", "Generate text after a prompt (dense attention, one device).") { prompt, promptFile, chat, json };
        m.AddTo(cmd);
        g.AddTo(cmd);
        attention.AddTo(cmd);
        kv.AddTo(cmd);
        cmd.SetAction(pr => CliRun.Guard(() =>
        {
            string text = PromptText(pr.GetValue(prompt), pr.GetValue(promptFile));
            var options = g.Parse(pr);
            var criti = attention.Parse(pr);
            var shadowKv = kv.Parse(pr);
            using var loaded = m.Load(pr);
            var tok = loaded.Folder.Tokenizer;
            IReadOnlyList<int> ids = pr.GetValue(chat)
                ? loaded.Folder.Template.Encode(tok, [ChatMessage.User(text)], addGenerationPrompt: true).Ids
                : tok.Encode(text, addBos: tok.BosId != null);
            options = options with { EosTokenIds = options.EosTokenIds ?? loaded.Folder.Tokenizer.StopIds(loaded.Folder.Config) };
            Console.Error.WriteLine($"prompt: {ids.Count} tokens");

            var model = loaded.Model;
            bool asJson = pr.GetValue(json);
            Action<GeneratedToken>? stream = asJson ? null : t => Console.Out.Write(t.Text);
            string Decode(IReadOnlyList<int> t) => tok.Decode(t, skipSpecial: true);
            GenerationResult result;
            if (shadowKv is not null)
            {
                Console.Error.WriteLine($"kv: {shadowKv}");
                var (shadowResult, store, device, host) = ShadowKvGenerate.Run(model, ids, options, shadowKv, criti, Decode, stream);
                result = shadowResult;
                if (store is not null)
                    Console.Error.WriteLine($"shadowkv store of {store.Length} tokens: {device / 1048576.0:F1} MiB on the device, {host / 1048576.0:F1} MiB in host memory");
            }
            else
            {
                // CritiPrefill prefills through the dense strategy; full attention keeps the model's own forward.
                using var generator = new Generator(model, Decode,
                    criti is null ? null : (ids, cache) => DensePrefill.IntoCache(model, ids, cache, criti));
                result = generator.Generate(ids, options, stream);
            }
            // OpenAI's words, as every surface: the end-of-sequence token is a "stop" too.
            var finish = result.FinishReason == Model.Generation.FinishReason.Eos ? "stop" : result.FinishReason;
            if (asJson)
                Console.WriteLine(JsonSerializer.Serialize(new
                {
                    prompt_token_ids = result.PromptTokenIds,
                    token_ids = result.TokenIds,
                    text = result.Text,
                    finish_reason = finish,
                    timings = new { prefill_ms = result.PrefillMs, decode_ms = result.DecodeMs, tokens_per_s = result.TokensPerSecond },
                }));
            else Console.Out.WriteLine();
            Console.Error.WriteLine($"{result.TokenIds.Count} tokens ({finish}); prefill {result.PrefillMs:F0} ms, decode {result.DecodeMs:F0} ms, {result.TokensPerSecond:F1} tokens/s");
            return CliRun.Ok;
        }));
        return cmd;
    }

    internal static string PromptText(string? prompt, string? file)
    {
        if ((prompt == null) == (file == null)) throw new CliUsageException("give exactly one of --prompt and --prompt-file.");
        return prompt ?? TextInput.Read("--prompt-file", file!);
    }
}

/// <summary>--max-new-tokens, --temperature, --top-p, --seed, --stop.</summary>
internal sealed class GenerationCliOptions
{
    public readonly Option<int> MaxNewTokens = new("--max-new-tokens", "-n") { Description = "most tokens to generate", DefaultValueFactory = _ => 128 };
    public readonly Option<double> Temperature = new("--temperature", "-t") { Description = "sampling temperature; 0 (default) is greedy" };
    public readonly Option<double> TopP = new("--top-p") { Description = "nucleus sampling mass (with --temperature)", DefaultValueFactory = _ => 1.0 };
    public readonly Option<long> Seed = new("--seed") { Description = "sampling seed", DefaultValueFactory = _ => 0 };
    public readonly Option<string[]> Stop = new("--stop") { Description = "stop string (repeatable)", AllowMultipleArgumentsPerToken = false };

    public void AddTo(Command c)
    {
        c.Options.Add(MaxNewTokens);
        c.Options.Add(Temperature);
        c.Options.Add(TopP);
        c.Options.Add(Seed);
        c.Options.Add(Stop);
    }

    public GenerationOptions Parse(ParseResult pr)
    {
        int n = pr.GetValue(MaxNewTokens);
        double t = pr.GetValue(Temperature), p = pr.GetValue(TopP);
        if (n < 0) throw new CliUsageException($"--max-new-tokens {n}: must be 0 or more.");
        if (t < 0) throw new CliUsageException($"--temperature {t}: must be 0 or more.");
        if (p <= 0 || p > 1) throw new CliUsageException($"--top-p {p}: must be in (0, 1].");
        return new GenerationOptions
        {
            MaxNewTokens = n, Temperature = t, TopP = p, Seed = pr.GetValue(Seed),
            StopStrings = pr.GetValue(Stop) ?? [],
        };
    }
}
