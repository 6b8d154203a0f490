using System.CommandLine;
using System.Text.Json;
using ApbCluster.Model.Loading;

namespace ApbCluster.Cli.Commands;

/// <summary>`apb info --model DIR`: architecture, sizes, dtype and tokenizer, without loading weights.</summary>
internal static class InfoCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model", "-m") { Description = "Hugging Face model folder", Required = true };
        var json = new Option<bool>("--json") { Description = "one JSON object on stdout" };
        var cmd = new Command("info", "Show a model's architecture, sizes, dtype and tokenizer.") { model, json };
        cmd.SetAction(pr => CliRun.Guard(() =>
        {
            using var folder = ModelFolder.Open(pr.GetValue(model)!);
            var c = folder.Config;
            long parameters = folder.Weights.Names.Sum(n => folder.Weights.Info(n).NumElements);
            long bytes = folder.Weights.Names.Sum(n => folder.Weights.Info(n).ByteLength);
            var info = new
            {
                directory = folder.Directory,
                model_type = c.ModelType,
                layers = c.NumLayers,
                hidden_size = c.HiddenSize,
                intermediate_size = c.IntermediateSize,
                heads = c.NumHeads,
                kv_heads = c.NumKvHeads,
                head_dim = c.HeadDim,
                vocab_size = c.VocabSize,
                rope_theta = c.RopeTheta,
                rope_scaling = c.RopeScaling?.RopeType,
                max_position_embeddings = c.MaxPositionEmbeddings,
                tie_word_embeddings = c.TieWordEmbeddings,
                attention_bias = c.AttentionBias,
                dtype = c.TorchDtype,
                parameters,
                weight_bytes = bytes,
                weight_files = folder.Weights.Files.Count,
                tokenizer_vocab = folder.Tokenizer.VocabSize,
                bos_token_id = folder.Tokenizer.BosId,
                eos_token_ids = folder.Tokenizer.EosIds,
                chat_template = folder.Template.Name,
            };
            if (pr.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(info, new JsonSerializerOptions { WriteIndented = true }));
                return CliRun.Ok;
            }
            Console.WriteLine($"model        {folder.Directory}");
            Console.WriteLine($"architecture {c.ModelType}: {c.NumLayers} layers, hidden {c.HiddenSize}, MLP {c.IntermediateSize}");
            Console.WriteLine($"attention    {c.NumHeads} heads, {c.NumKvHeads} KV heads (GQA {c.KvGroupSize}), head dim {c.HeadDim}{(c.AttentionBias ? ", q/k/v bias" : "")}");
            Console.WriteLine($"positions    RoPE theta {c.RopeTheta:G}{(c.RopeScaling is { } r ? $", {r.RopeType} scaling x{r.Factor:G} (from {r.OriginalMaxPositionEmbeddings})" : "")}, max {c.MaxPositionEmbeddings}");
            Console.WriteLine($"weights      {parameters / 1e6:F1} M parameters, {bytes / 1048576.0:F1} MiB in {folder.Weights.Files.Count} file(s), {c.TorchDtype}{(c.TieWordEmbeddings ? ", tied embeddings" : "")}");
            Console.WriteLine($"tokenizer    {folder.Tokenizer.VocabSize} tokens (model vocab {c.VocabSize}), BOS {folder.Tokenizer.BosId?.ToString() ?? "none"}, EOS [{string.Join(", ", folder.Tokenizer.EosIds)}], chat template {folder.Template.Name}");
            return CliRun.Ok;
        }));
        return cmd;
    }
}
