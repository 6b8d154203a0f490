using System.CommandLine;
using ApbCluster.Model.Config;
using ApbCluster.Model.Layers;
using ApbCluster.Model.Loading;
using static TorchSharp.torch;

namespace ApbCluster.Cli.Commands;

/// <summary>
/// `apb logits`: diagnostic for comparisons with other implementations. Runs token ids through the model
/// (no tokenizer needed) and writes the last layer's logits and greedy continuation to a safetensors file.
/// </summary>
internal static class LogitsCommand
{
    public static Command Create()
    {
        var m = new ModelOptions();
        var ids = new Option<string>("--ids") { Description = "comma-separated token ids, or @FILE holding them", Required = true };
        var greedy = new Option<int>("--greedy") { Description = "also generate this many tokens greedily (no EOS stop)" };
        var output = new Option<string>("--out", "-o") { Description = "safetensors file to write ('logits' [S, vocab] fp32, 'greedy' [N] int64)", Required = true };
        var cmd = new Command("logits", "Diagnostic: write a model's logits for token ids, and its greedy continuation.") { ids, greedy, output };
        m.AddTo(cmd);
        cmd.SetAction(pr => CliRun.Guard(() =>
        {
            var tokens = ParseIds(pr.GetValue(ids)!);
            var device = ModelOptions.ParseDevice(pr.GetValue(m.Device)!);
            string dir = pr.GetValue(m.Model)!;
            var config = ModelConfig.Load(dir);
            using var weights = CheckpointWeights.Open(dir);
            var dtype = ModelOptions.ParseDtype(pr.GetValue(m.Dtype)!, config, device);
            using var model = LlamaModel.FromCheckpoint(config, weights, device, dtype);
            using var input = tensor(tokens, device: device).unsqueeze(0);
            var outputs = new Dictionary<string, Tensor> { ["logits"] = model.Forward(input)[0].cpu() };

            int steps = pr.GetValue(greedy);
            if (steps > 0)
            {
                using var cache = model.CreateCache(1, tokens.Length + steps);
                var next = model.Forward(input, cache, lastPositionOnly: true).argmax(-1); // [1, 1]
                var produced = new List<long>();
                for (int i = 0; i < steps; i++)
                {
                    produced.Add(next.item<long>());
                    if (i + 1 < steps) next = model.Forward(next, cache, lastPositionOnly: true).argmax(-1);
                }
                outputs["greedy"] = tensor(produced.ToArray());
            }
            SafeTensorsWriter.Write(pr.GetValue(output)!, outputs);
            Console.Error.WriteLine($"wrote {pr.GetValue(output)}: logits [{tokens.Length}, {config.VocabSize}] ({dtype} on {device}), {steps} greedy tokens");
            return CliRun.Ok;
        }));
        return cmd;
    }

    private static long[] ParseIds(string text)
    {
        if (text.StartsWith('@'))
        {
            var path = text[1..];
            if (!File.Exists(path)) throw new CliUsageException($"--ids {text}: file not found.");
            text = File.ReadAllText(path);
        }
        try { return text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(long.Parse).ToArray(); }
        catch (FormatException) { throw new CliUsageException("--ids: expected comma-separated integers."); }
    }
}
