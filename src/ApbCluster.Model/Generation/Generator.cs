using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using ApbCluster.Model.Layers;
using static TorchSharp.torch;

namespace ApbCluster.Model.Generation;

/// <summary>
/// Dense prefill + KV-cached decode for one sequence at a time (not thread-safe: one request per Generator).
/// The KV cache and the one-token input buffer are kept between requests and grown only when a request
/// needs more room. Per decode step the only host sync is reading the sampled token id.
/// </summary>
public sealed class Generator : IDisposable
{
    private readonly LlamaModel _model;
    private readonly Func<IReadOnlyList<int>, string>? _decode;
    private readonly Tensor _input; // [1, 1] int64: the token fed to the next decode step, written on the device
    private readonly Func<Tensor, KvCache, Tensor>? _prefill;
    private KvCache? _cache;

    /// <param name="decode">Token ids to text (a tokenizer's Decode); needed for text and stop strings.</param>
    /// <param name="prefill">How the prompt ids [1, S] are prefilled into the empty cache, returning the last position's
    /// logits [1, 1, vocab] (e.g. with CritiPrefill); null: the model's own dense forward.</param>
    public Generator(LlamaModel model, Func<IReadOnlyList<int>, string>? decode = null, Func<Tensor, KvCache, Tensor>? prefill = null)
    {
        _model = model;
        _decode = decode;
        _prefill = prefill;
        _input = zeros(new long[] { 1, 1 }, dtype: ScalarType.Int64, device: model.Device);
        _input.DetachFromDisposeScope();
    }

    /// <summary>Generates after <paramref name="promptIds"/>, calling <paramref name="onToken"/> as each token is produced.</summary>
    public GenerationResult Generate(IReadOnlyList<int> promptIds, GenerationOptions options,
        Action<GeneratedToken>? onToken = null, CancellationToken cancellationToken = default)
    {
        if (promptIds.Count == 0) throw new ArgumentException("the prompt has no tokens.", nameof(promptIds));
        if (options.StopStrings.Count > 0 && _decode is null)
            throw new ArgumentException("stop strings need a decode function (pass the tokenizer's Decode to the Generator).");
        var eos = new HashSet<int>(options.EosTokenIds ?? _model.Config.EosTokenIds);
        var text = new TextTracker(_decode, options.StopStrings);
        var generated = new List<int>();
        if (options.MaxNewTokens <= 0)
            return new GenerationResult(promptIds.ToArray(), generated, "", FinishReason.Length, 0, 0);

        var cache = CacheFor(promptIds.Count + options.MaxNewTokens);
        using var sampler = new Sampler(options, _model.Device);
        using var noGrad = no_grad();

        var clock = Stopwatch.StartNew();
        int token;
        using (var prompt = tensor(promptIds.Select(i => (long)i).ToArray(), device: _model.Device))
            token = Step(prompt.unsqueeze(0), cache, sampler, _prefill);
        double prefillMs = clock.Elapsed.TotalMilliseconds;
        clock.Restart();

        string? finish = null;
        while (true)
        {
            generated.Add(token);
            bool isEos = eos.Contains(token);
            bool full = generated.Count >= options.MaxNewTokens;
            var (piece, stopped) = text.Add(isEos ? null : token, final: isEos || full);
            finish = stopped ? FinishReason.Stop : isEos ? FinishReason.Eos : full ? FinishReason.Length : null;
            onToken?.Invoke(new GeneratedToken(token, piece, generated.Count - 1, finish));
            if (finish != null) break;
            cancellationToken.ThrowIfCancellationRequested();
            token = Step(_input, cache, sampler);
        }
        double decodeMs = clock.Elapsed.TotalMilliseconds;
        return new GenerationResult(promptIds.ToArray(), generated, text.Text, finish, prefillMs, decodeMs);
    }

    /// <summary>Streams the tokens of <see cref="Generate"/>; the last one carries the finish reason.
    /// Generation runs on a worker thread; leaving the loop early cancels it.</summary>
    public async IAsyncEnumerable<GeneratedToken> StreamAsync(IReadOnlyList<int> promptIds, GenerationOptions options,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var channel = Channel.CreateUnbounded<GeneratedToken>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        var worker = Task.Run(() =>
        {
            try
            {
                Generate(promptIds, options, t => channel.Writer.TryWrite(t), stop.Token);
                channel.Writer.Complete();
            }
            catch (Exception e) { channel.Writer.Complete(e); }
        }, CancellationToken.None);
        try
        {
            await foreach (var t in channel.Reader.ReadAllAsync(cancellationToken)) yield return t;
        }
        finally
        {
            stop.Cancel();
            try { await worker.ConfigureAwait(false); } catch (OperationCanceledException) { }
        }
    }

    /// <summary>Runs the model on ids [1, S], samples, writes the token into the decode input on the device,
    /// and reads it back (the step's one host sync).</summary>
    private int Step(Tensor ids, KvCache cache, Sampler sampler, Func<Tensor, KvCache, Tensor>? prefill = null)
    {
        using var scope = NewDisposeScope();
        var logits = prefill is null ? _model.Forward(ids, cache, lastPositionOnly: true) : prefill(ids, cache); // [1, 1, vocab]
        var next = sampler.Sample(logits.select(1, 0));                   // [1]
        _input.copy_(next.view(1, 1));
        return (int)next.item<long>();
    }

    private KvCache CacheFor(long positions)
    {
        if (_cache is null || _cache.Capacity < positions)
        {
            _cache?.Dispose();
            _cache = null; // free the old buffers before allocating the new ones
            _cache = _model.CreateCache(1, positions);
        }
        _cache.Reset();
        return _cache;
    }

    public void Dispose()
    {
        _cache?.Dispose();
        _input.Dispose();
    }
}
