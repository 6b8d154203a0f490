using System.Collections.Concurrent;
using ApbCluster.Evaluation.Tasks;
using ApbCluster.Model.Tokenization;

namespace ApbCluster.Training.Demo;

/// <summary>
/// One training sequence: an evaluation sample's prompt exactly as <c>apb eval</c> feeds it (document ids, then
/// question ids), then the answer as the model should write it (<c>" " + answer</c>) and EOS.
/// The loss counts the tokens from <see cref="PromptLength"/> on (the answer and EOS).
/// </summary>
public sealed record DemoExample(EvalTask Task, long[] Ids, int PromptLength);

/// <summary>One step's batch request: curriculum phase, its batch index, sequence length and count.</summary>
public sealed record BatchKey(int Phase, int Index, int Length, int Size);

/// <summary>
/// Generates training examples with the evaluation generator (<see cref="SampleGenerator"/>) on worker threads, a
/// few batches ahead of the trainer. Example j of phase p depends only on (seed, p, j): its task (weighted draw),
/// length (uniform in [3/4 L, L]), the needle's depth (uniform over the whole document) and the generator seed,
/// which lies far above the seeds <c>apb eval</c> and retaining-head training use, so training and test samples differ.
/// </summary>
public sealed class DemoExamples : IDisposable
{
    /// <summary>Training sample seeds start here (eval uses seed + i for small i).</summary>
    public const long SeedBase = 1_000_000_000L;

    private readonly ConcurrentBag<SampleGenerator> _generators = [];
    private readonly Func<SampleGenerator> _newGenerator;
    private readonly long _seed;
    private readonly (EvalTask Task, double Cumulative)[] _tasks;
    private readonly int _eosId;
    private readonly int _ahead;
    private readonly double _questionInContext;
    private readonly Queue<(BatchKey Key, Task<DemoExample[]> Batch)> _pending = new();
    private readonly CancellationTokenSource _stop = new();

    /// <param name="tokenizerDir">Folder holding tokenizer.json; each worker loads its own tokenizer from it.</param>
    /// <param name="taskWeights">Relative share of each task.</param>
    /// <param name="ahead">Batches prepared ahead of the one being consumed.</param>
    /// <param name="questionInContext">Share of examples whose document also holds the question after its header
    /// (where APB's anchor embeds it).</param>
    public DemoExamples(string tokenizerDir, long seed, IReadOnlyDictionary<EvalTask, double> taskWeights, int ahead = 3,
        double questionInContext = 0)
    {
        _questionInContext = questionInContext;
        _newGenerator = () => new SampleGenerator(TextTokenizer.Load(tokenizerDir));
        var first = _newGenerator();
        _eosId = first.Tokenizer.EosIds.Count > 0 ? first.Tokenizer.EosIds[0] : throw new ArgumentException($"{tokenizerDir}: the tokenizer has no EOS token.");
        _generators.Add(first);
        _seed = seed;
        double total = taskWeights.Values.Sum(), run = 0;
        if (!(total > 0) || taskWeights.Values.Any(w => w < 0)) throw new ArgumentException("task weights must be non-negative with a positive sum.");
        _tasks = taskWeights.OrderBy(p => p.Key).Select(p => (p.Key, run += p.Value / total)).ToArray();
        _ahead = Math.Max(0, ahead);
    }

    public int EosId => _eosId;

    /// <summary>The batch for <paramref name="key"/>; batches of the same phase with the next indices are started
    /// in the background. A batch asked for out of order is made on the spot.</summary>
    public DemoExample[] Get(BatchKey key)
    {
        while (_pending.Count > 0 && _pending.Peek().Key != key) _pending.Dequeue(); // another phase or index: drop
        var batch = _pending.Count > 0 ? _pending.Dequeue().Batch : Start(key);
        var last = _pending.Count > 0 ? _pending.Last().Key : key;
        while (_pending.Count < _ahead)
        {
            last = last with { Index = last.Index + 1 };
            _pending.Enqueue((last, Start(last)));
        }
        return batch.GetAwaiter().GetResult();
    }

    /// <summary>Example <paramref name="index"/> of <paramref name="phase"/> at length at most <paramref name="length"/>.</summary>
    public DemoExample Make(int phase, long index, int length)
    {
        long sampleSeed = SeedBase + _seed * 100_000_000L + phase * 10_000_000L + index;
        var rng = new Random(unchecked((int)(sampleSeed * 2_654_435_761L >> 7) ^ (int)sampleSeed));
        double u = rng.NextDouble();
        var task = _tasks.First(t => u < t.Cumulative || t.Task == _tasks[^1].Task).Task;
        int tokens = length - rng.Next(length / 4 + 1);
        double depth = rng.NextDouble();
        // Drawn last, and only when asked for, so a run without it sees exactly the examples it always did.
        bool embed = _questionInContext > 0 && rng.NextDouble() < _questionInContext;
        if (!_generators.TryTake(out var generator)) generator = _newGenerator();
        try
        {
            var s = generator.Generate(task, tokens, sampleSeed, depth);
            var answer = generator.Tokenizer.Encode(" " + s.AnswerText, addBos: false);
            // The document, with the question after its header as APB's anchor has it, then the question and the answer.
            int offset = embed ? Math.Min(s.TemplateOffset, s.DocumentIds.Length) : s.DocumentIds.Length;
            var prompt = s.DocumentIds.Take(offset).Concat(embed ? s.QuestionIds : []).Concat(s.DocumentIds.Skip(offset)).Concat(s.QuestionIds);
            var ids = prompt.Concat(answer.Select(a => (long)a)).Append(_eosId).ToArray();
            return new DemoExample(task, ids, ids.Length - answer.Count - 1);
        }
        finally
        {
            _generators.Add(generator);
        }
    }

    private Task<DemoExample[]> Start(BatchKey key)
    {
        var token = _stop.Token;
        var parts = Enumerable.Range(0, key.Size)
            .Select(i => Task.Run(() => Make(key.Phase, (long)key.Index * key.Size + i, key.Length), token)).ToArray();
        return Task.WhenAll(parts);
    }

    public void Dispose()
    {
        _stop.Cancel();
        _pending.Clear();
        _stop.Dispose();
    }
}
