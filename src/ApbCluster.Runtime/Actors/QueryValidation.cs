using ApbCluster.Contracts;
using ApbCluster.Parallel.Serving;
using ApbCluster.Model.Generation;

namespace ApbCluster.Runtime.Actors;

/// <summary>Turns a SubmitQuery into token ids, or a clear reason why not (bad input never reaches a host).</summary>
public static class QueryValidation
{

    /// <summary>The prompt as <see cref="PromptLayout"/> builds it in every path; <c>TemplateOffset</c> is where the
    /// anchor embeds the question.</summary>
    public sealed record Prompt(int[] Document, int[] Question, int TemplateOffset)
    {
        public static Prompt Of(PromptLayout layout) =>
            new(layout.Document.Select(x => (int)x).ToArray(), layout.Question.Select(x => (int)x).ToArray(), layout.TemplateOffset);
    }

    /// <summary>The query's prefill attention with every parameter filled in from the router's settings: null for full
    /// attention, or a reason why the query's choice is refused.</summary>
    public static (PrefillAttentionOptions? Resolved, string? Error) PrefillAttention(SubmitQuery q, RouterSettings s)
    {
        var p = q.PrefillAttention ?? new PrefillAttentionOptions(PrefillAttentionKind.Default);
        if (!Enum.IsDefined(p.Kind)) return (null, $"unknown prefill attention {(int)p.Kind} (known: {string.Join(", ", Enum.GetNames<PrefillAttentionKind>())})");
        bool criti = p.Kind == PrefillAttentionKind.CritiPrefill || (p.Kind == PrefillAttentionKind.Default && s.CritiPrefillByDefault);
        if (!criti) return (null, null);
        if (q.Mode is AttentionMode.Ring or AttentionMode.Ulysses)
            return (null, $"prefill attention critiprefill runs with dense, apb and star, not {q.Mode.ToString().ToLowerInvariant()}");
        var d = s.CritiPrefill;
        var o = d with { Budget = p.Budget ?? d.Budget, Segment = p.Segment ?? d.Segment, Block = p.Block ?? d.Block, Threshold = p.Threshold ?? d.Threshold };
        try { o.Validate("criti-"); }
        catch (Parallel.Kernels.CritiPrefillOptionsException e) { return (null, e.Message); }
        return (new PrefillAttentionOptions(PrefillAttentionKind.CritiPrefill, o.Budget, o.Segment, o.Block, o.Threshold), null);
    }

    /// <summary>The query's decode KV store with every ShadowKV parameter filled in from the router's settings: null for
    /// the full store, or a reason why the query's choice is refused.</summary>
    public static (KvStoreOptions? Resolved, string? Error) KvStore(SubmitQuery q, RouterSettings s)
    {
        var k = q.KvStore ?? new KvStoreOptions(KvStoreKind.Default);
        if (!Enum.IsDefined(k.Kind)) return (null, $"unknown KV store {(int)k.Kind} (known: {string.Join(", ", Enum.GetNames<KvStoreKind>())})");
        bool shadow = k.Kind == KvStoreKind.ShadowKv || (k.Kind == KvStoreKind.Default && s.ShadowKvByDefault);
        if (!shadow) return (null, null);
        var d = s.ShadowKv;
        var o = d with
        {
            Rank = k.Rank ?? d.Rank, Chunk = k.Chunk ?? d.Chunk, Budget = k.Budget ?? d.Budget, Outliers = k.Outliers ?? d.Outliers,
            Local = k.Local ?? d.Local,
            Values = k.ValuesOnHost is { } host ? host ? ApbCluster.Model.KvStores.ShadowKvValues.Host : ApbCluster.Model.KvStores.ShadowKvValues.Device : d.Values,
        };
        try { o.Validate("shadow-"); }
        catch (ApbCluster.Model.KvStores.ShadowKvOptionsException e) { return (null, e.Message); }
        return (Engine.ShadowKvWire.ToWire(o), null);
    }

    public static (Prompt? Prompt, string? Error) Tokenize(SubmitQuery q, RouterSettings s)
    {
        if (!Enum.IsDefined(q.Mode)) return (null, $"unknown attention mode {(int)q.Mode} (known: {string.Join(", ", Enum.GetNames<AttentionMode>())})");
        if (!Enum.IsDefined(q.Split)) return (null, $"unknown block split {(int)q.Split} (known: {string.Join(", ", Enum.GetNames<BlockSplitMode>())})");
        var g = q.Generation;
        if (g.MaxNewTokens < 1 || g.MaxNewTokens > s.MaxNewTokensLimit)
            return (null, $"max new tokens {g.MaxNewTokens} is outside 1..{s.MaxNewTokensLimit}");
        if (float.IsNaN(g.Temperature) || g.Temperature < 0) return (null, $"temperature {g.Temperature} must be 0 (greedy) or positive");
        if (float.IsNaN(g.TopP) || g.TopP <= 0 || g.TopP > 1) return (null, $"top-p {g.TopP} must be in (0, 1]");
        if (q.Apb is { } apb)
        {
            if (apb.AnchorLength < 0 || apb.PassingLength < 0) return (null, $"anchor ({apb.AnchorLength}) and passing ({apb.PassingLength}) lengths must not be negative");
            if (!Enum.IsDefined(apb.Compressor))
                return (null, $"unknown compressor {(byte)apb.Compressor} (known: {string.Join(", ", CompressorNames.Known)})");
        }
        if (string.IsNullOrEmpty(q.Question)) return (null, "the question is empty");
        if (s.Codec is not { } codec)
            return (null, "this router has no tokenizer: set APB_MODEL_DIR (or APB_MODEL=random:SHAPE:SEED) on router nodes");

        Prompt prompt;
        if (q.Context.TokenIds is { } ids)
        {
            var bad = ids.FirstOrDefault(id => id < 0 || id >= codec.VocabSize, -1);
            if (ids.Any(id => id < 0 || id >= codec.VocabSize)) return (null, $"context token id {bad} is outside the vocabulary (0..{codec.VocabSize - 1})");
            if (ids.Count == 0) return (null, "the context is empty (give text or token ids)");
            prompt = Prompt.Of(codec.Layout("", q.Question).WithDocumentIds(ids));
        }
        else if (!string.IsNullOrEmpty(q.Context.Text))
            prompt = Prompt.Of(codec.Layout(q.Context.Text, q.Question));
        else if (q.Mode == AttentionMode.Dense)
        {
            // No document: the question is a short prompt of its own, run whole on one host.
            prompt = Prompt.Of(codec.ShortLayout(q.Question));
            if (prompt.Document.Length == 0 || prompt.Question.Length == 0)
                return (null, "the prompt is a single token and this model has no BOS token to go before it: give at least two tokens");
        }
        else
            return (null, $"the context is empty (give text or token ids); {q.Mode.ToString().ToLowerInvariant()} splits a document across hosts, only dense runs a prompt without one");
        if (prompt.Document.Length == 0) return (null, "the context is empty (give text or token ids)");
        int[] document = prompt.Document, question = prompt.Question;

        if (PositionBudget.Check(document.Length, question.Length, g.MaxNewTokens, codec.MaxPositions) is { } tooLong)
            return (null, tooLong);
        return (prompt, null);
    }
}
