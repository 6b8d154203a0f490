using ApbCluster.Contracts;
using ApbCluster.Model.Generation;

namespace ApbCluster.Runtime.Actors;

/// <summary>Turns a SubmitQuery into token ids, or a clear reason why not (bad input never reaches a host).</summary>
internal static class QueryValidation
{
    public static readonly string[] Compressors = ["", "query-aware", "random", "retaining-heads"];

    public sealed record Prompt(int[] Document, int[] Question);

    public static (Prompt? Prompt, string? Error) Tokenize(SubmitQuery q, RouterSettings s)
    {
        if (!Enum.IsDefined(q.Mode)) return (null, $"unknown attention mode {(int)q.Mode} (known: {string.Join(", ", Enum.GetNames<AttentionMode>())})");
        var g = q.Generation;
        if (g.MaxNewTokens < 1 || g.MaxNewTokens > s.MaxNewTokensLimit)
            return (null, $"max new tokens {g.MaxNewTokens} is outside 1..{s.MaxNewTokensLimit}");
        if (float.IsNaN(g.Temperature) || g.Temperature < 0) return (null, $"temperature {g.Temperature} must be 0 (greedy) or positive");
        if (float.IsNaN(g.TopP) || g.TopP <= 0 || g.TopP > 1) return (null, $"top-p {g.TopP} must be in (0, 1]");
        if (q.Apb is { } apb)
        {
            if (apb.AnchorLength < 0 || apb.PassingLength < 0) return (null, $"anchor ({apb.AnchorLength}) and passing ({apb.PassingLength}) lengths must not be negative");
            if (!Compressors.Contains(apb.Compressor)) return (null, $"unknown compressor '{apb.Compressor}' (known: {string.Join(", ", Compressors.Skip(1))})");
        }
        if (string.IsNullOrEmpty(q.Question)) return (null, "the question is empty");
        if (s.Codec is not { } codec)
            return (null, "this router has no tokenizer: set APB_MODEL_DIR (or APB_MODEL=random:SHAPE:SEED) on router nodes");

        int[] document;
        if (q.Context.TokenIds is { } ids)
        {
            var bad = ids.FirstOrDefault(id => id < 0 || id >= codec.VocabSize, -1);
            if (ids.Any(id => id < 0 || id >= codec.VocabSize)) return (null, $"context token id {bad} is outside the vocabulary (0..{codec.VocabSize - 1})");
            document = ids.ToArray();
        }
        else if (!string.IsNullOrEmpty(q.Context.Text))
            document = codec.Encode(q.Context.Text, addBos: true).ToArray();
        else
            return (null, "the context is empty (give text or token ids)");
        if (document.Length == 0) return (null, "the context is empty (give text or token ids)");

        var question = codec.Encode(q.Question, addBos: false).ToArray();
        if (PositionBudget.Check(document.Length, question.Length, g.MaxNewTokens, codec.MaxPositions) is { } tooLong)
            return (null, tooLong);
        return (new Prompt(document, question), null);
    }
}
