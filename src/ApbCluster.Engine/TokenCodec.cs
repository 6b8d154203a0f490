using System.Text;
using ApbCluster.Model.Config;
using ApbCluster.Model.Tokenization;
using ApbCluster.Parallel.Serving;

namespace ApbCluster.Engine;

/// <summary>
/// The router's tokenizer: text in, ids out, and ids back to text as they stream. The router
/// tokenizes (hosts receive ids only) so a query is split once, in one place.
/// </summary>
public interface ITokenCodec
{
    int VocabSize { get; }

    int MaxPositions { get; }

    IReadOnlyList<int> EosIds { get; }

    IReadOnlyList<int> Encode(string text, bool addBos);

    /// <summary>The prompt as every path builds it (<see cref="PromptLayout"/>): `apb ask` on the same model folder
    /// gives the same ids.</summary>
    PromptLayout Layout(string document, string question);

    /// <summary>A prompt without a document (<see cref="PromptLayout.ShortPrompt"/>), for dense attention on one host.</summary>
    PromptLayout ShortLayout(string prompt);

    /// <summary>A decoder that turns ids into text incrementally (multi-byte characters complete first).</summary>
    Func<int, string> CreateDecoder();

    public static ITokenCodec For(ModelSpec spec)
    {
        if (spec.RandomShape is not null) return new ByteTokenCodec(spec.Config());
        var config = spec.Config();
        var tokenizer = TextTokenizer.Load(spec.Directory!);
        return new TokenizerCodec(tokenizer, ChatTemplate.For(config, tokenizer, ChatTemplate.ReadJinja(spec.Directory!)), config);
    }
}

/// <summary>The model folder's own tokenizer and chat template.</summary>
public sealed class TokenizerCodec(TextTokenizer tokenizer, ChatTemplate template, ModelConfig config) : ITokenCodec
{
    public int VocabSize => config.VocabSize;
    public int MaxPositions => config.MaxPositionEmbeddings;
    public IReadOnlyList<int> EosIds => config.EosTokenIds.Count > 0 ? config.EosTokenIds : tokenizer.EosIds;

    public IReadOnlyList<int> Encode(string text, bool addBos) => tokenizer.Encode(text, addBos);

    public PromptLayout Layout(string document, string question) => PromptLayout.Build(tokenizer, template, document, question);

    public PromptLayout ShortLayout(string prompt) => PromptLayout.ShortPrompt(tokenizer, template, prompt);

    public Func<int, string> CreateDecoder() => tokenizer.CreateIncrementalDecoder().Push;
}

/// <summary>
/// For random-weight models (no tokenizer files): UTF-8 bytes as ids <c>Offset + byte</c> (ids below
/// the offset are BOS/EOS/pad); ids outside the byte range decode as "&lt;id&gt;". Tests use it to
/// tokenize exactly as the router does.
/// </summary>
public sealed class ByteTokenCodec(ModelConfig config) : ITokenCodec
{
    public const int Offset = 3;

    public int VocabSize => config.VocabSize;
    public int MaxPositions => config.MaxPositionEmbeddings;
    public IReadOnlyList<int> EosIds => config.EosTokenIds;

    public IReadOnlyList<int> Encode(string text, bool addBos)
    {
        var ids = new List<int>();
        if (addBos && config.BosTokenId is { } bos) ids.Add(bos);
        ids.AddRange(Encoding.UTF8.GetBytes(text).Select(b => (Offset + b) % config.VocabSize));
        return ids;
    }

    public PromptLayout Layout(string document, string question) => PromptLayout.Plain(Encode, config.BosTokenId is not null, document, question);

    public PromptLayout ShortLayout(string prompt) => PromptLayout.PlainShortPrompt(Encode, config.BosTokenId is not null, prompt);

    public Func<int, string> CreateDecoder()
    {
        var decoder = Encoding.UTF8.GetDecoder();
        var chars = new char[8];
        return id =>
        {
            if (id < Offset || id >= Offset + 256) return $"<{id}>";
            int n = decoder.GetChars([(byte)(id - Offset)], 0, 1, chars, 0);
            return new string(chars, 0, n);
        };
    }
}
