using ApbCluster.Evaluation.Running;
using ApbCluster.Evaluation.Tasks;
using ApbCluster.Model.Layers;
using ApbCluster.Model.Loading;
using ApbCluster.Model.Tests.Support;
using ApbCluster.NativeInterop;
using ApbCluster.Training.Demo;
using Xunit;
using static TorchSharp.torch;

namespace ApbCluster.Training.Tests;

public class DemoTrainingTests
{
    private static DemoTrainingOptions Tiny(int steps) => new()
    {
        Architecture = DemoArchitecture.Tiny, Steps = steps, MaxLength = 256, BatchTokens = 1024, LearningRate = 3e-3, Seed = 5,
    };

    private static DemoTrainingResult Train(DemoTrainingOptions o, string dir)
    {
        TorchRuntime.EnsureLoaded("cpu");
        return new DemoModelTrainer(o, CPU).Train(dir, saveDtype: ScalarType.Float32);
    }

    [Fact]
    public void TinyRunLowersTheLossIsDeterministicAndSavesALoadableModel()
    {
        using var a = new TempDir();
        using var b = new TempDir();
        var first = Train(Tiny(14), a.Path);
        var second = Train(Tiny(14), b.Path);

        Assert.Equal(14, first.Log.Count);
        Assert.Equal(first.Log.Select(s => s.Loss), second.Log.Select(s => s.Loss)); // same seed, same curve, bit for bit
        Assert.Equal(File.ReadAllBytes(Path.Combine(a.Path, "model.safetensors")), File.ReadAllBytes(Path.Combine(b.Path, "model.safetensors")));
        double start = first.Log.Take(3).Average(s => s.Loss), end = first.Log.TakeLast(3).Average(s => s.Loss);
        Assert.True(end < start - 0.5, $"loss {start:F3} -> {end:F3}");
        Assert.All(first.Log, s => Assert.Equal(4, s.Batch));
        Assert.Equal("steps", first.StopReason);

        foreach (var name in new[] { "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json", "training.json" })
            Assert.True(File.Exists(Path.Combine(a.Path, name)), name);
        using var folder = ModelFolder.Open(a.Path);
        using var model = LlamaModel.FromCheckpoint(folder.Config, folder.Weights, CPU, ScalarType.Float32);
        // The eval pipeline runs on it (a 14-step model answers nothing useful yet).
        var runner = new EvalRunner(model, folder.Tokenizer);
        var sample = runner.Generator.Generate(EvalTask.SingleNeedle, 256, seed: 0, depth: 0.5);
        var row = runner.RunOne(sample, EvalMode.Dense, hosts: 1);
        Assert.Equal("single-needle", row.Task);
        Assert.Contains("\"stopped_by\": \"steps\"", File.ReadAllText(Path.Combine(a.Path, "training.json")));
    }

    [Fact]
    public void QuestionBeforeTheDocumentTrainsDeterministicallyAndIsRecorded()
    {
        using var a = new TempDir();
        using var b = new TempDir();
        using var plain = new TempDir();
        var mixed = Tiny(4) with { QuestionInContextShare = 0.5 };
        var first = Train(mixed, a.Path);
        var second = Train(mixed, b.Path);
        var without = Train(Tiny(4), plain.Path);
        // Same seed, same mix: the same curve bit for bit; the mix changes the data, so the curve differs from the plain run's.
        Assert.Equal(first.Log.Select(s => s.Loss), second.Log.Select(s => s.Loss));
        Assert.NotEqual(first.Log.Select(s => s.Loss), without.Log.Select(s => s.Loss));
        var record = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(a.Path, "training.json")))!;
        Assert.Equal(0.5, (double?)record["question_in_context_share"]);
    }

    [Fact]
    public void TimeLimitEndsTheRunAndStillSaves()
    {
        using var dir = new TempDir();
        var r = Train(Tiny(100_000) with { TimeLimitSeconds = 3 }, dir.Path);
        Assert.Equal("time limit", r.StopReason);
        Assert.InRange(r.Seconds, 3, 30);
        Assert.True(File.Exists(Path.Combine(dir.Path, "model.safetensors")));
    }

    [Fact]
    public void ExamplesAreTheEvalPromptPlusAnswerAndEos()
    {
        using var dir = new TempDir();
        var tok = DemoTokenizerTests.Load(dir);
        var weights = new Dictionary<EvalTask, double> { [EvalTask.VariableTracking] = 1 };
        using var examples = new DemoExamples(dir.Path, seed: 2, weights);
        var e = examples.Make(phase: 0, index: 7, length: 512);
        Assert.Equal(EvalTask.VariableTracking, e.Task);
        Assert.Equal(examples.EosId, (int)e.Ids[^1]);
        Assert.Equal(tok.BosId, (int)e.Ids[0]);
        string prompt = tok.Decode(e.Ids.Take(e.PromptLength).Select(i => (int)i), skipSpecial: true);
        Assert.StartsWith(SampleGenerator.Header, prompt);
        Assert.EndsWith("\nAnswer:", prompt);
        string answer = tok.Decode(e.Ids.Skip(e.PromptLength).Select(i => (int)i), skipSpecial: true);
        Assert.Matches(@"^ [A-Z]{5}, [A-Z]{5}, [A-Z]{5}, [A-Z]{5}$", answer);
        Assert.InRange(e.PromptLength, 384 * 0.99, 512 * 1.01);
        // Deterministic by (seed, phase, index); the batch of a key is its examples in order.
        Assert.Equal(e.Ids, examples.Make(0, 7, 512).Ids);
        var batch = examples.Get(new BatchKey(0, 1, 512, 4));
        Assert.Equal(e.Ids, batch[3].Ids);
        Assert.NotEqual(e.Ids, examples.Make(1, 7, 512).Ids);
    }

    [Fact]
    public void QuestionInContextPutsTheQuestionAfterTheHeaderAsApbsAnchorDoes()
    {
        using var dir = new TempDir();
        var tok = DemoTokenizerTests.Load(dir);
        var weights = new Dictionary<EvalTask, double> { [EvalTask.SingleNeedle] = 1 };
        using var plain = new DemoExamples(dir.Path, seed: 2, weights);
        using var embedded = new DemoExamples(dir.Path, seed: 2, weights, questionInContext: 1);
        var p = plain.Make(phase: 0, index: 3, length: 512);
        var e = embedded.Make(phase: 0, index: 3, length: 512);
        // The same sample, with the question (the tokens between the document and the answer) also after the header.
        var question = p.Ids[(p.PromptLength - (e.Ids.Length - p.Ids.Length))..p.PromptLength];
        var s = new SampleGenerator(tok).Generate(EvalTask.SingleNeedle, 512, seed: 1, depth: 0.5);
        int offset = s.TemplateOffset;
        Assert.Equal(p.Ids[..offset], e.Ids[..offset]);
        Assert.Equal(question, e.Ids[offset..(offset + question.Length)]);
        Assert.Equal(p.Ids[offset..], e.Ids[(offset + question.Length)..]);
        Assert.Equal(p.PromptLength + question.Length, e.PromptLength);
        string text = tok.Decode(e.Ids.Take(e.PromptLength).Select(i => (int)i), skipSpecial: true);
        Assert.Equal(2, System.Text.RegularExpressions.Regex.Matches(text, "Question:").Count);
        // Share 0 draws nothing extra: the plain examples are those of a run without the option.
        using var zero = new DemoExamples(dir.Path, seed: 2, weights, questionInContext: 0);
        Assert.Equal(p.Ids, zero.Make(0, 3, 512).Ids);
    }

    [Fact]
    public void LossPositionsCoverTheAnswerAndEosAndEveryNthOtherToken()
    {
        TorchRuntime.EnsureLoaded("cpu");
        var batch = new[] { new DemoExample(EvalTask.SingleNeedle, [1, 2, 3, 4, 5, 9], 4), new DemoExample(EvalTask.SingleNeedle, [1, 2, 3, 9], 3) };
        var t = DemoModelTrainer.Tensors(batch, 9, lmStride: 2, CPU);
        Assert.Equal(new long[] { 1, 2, 3, 4, 5, 9, 1, 2, 3, 9, 9, 9 }, t.Ids.data<long>().ToArray());
        // Row 0: LM at 0 and 2 (stride 2 from offset 0); position 3 predicts the first answer token (5), position 4 the EOS.
        // Row 1: LM at 1 (offset 1); answer at 2 (predicts EOS).
        Assert.Equal(new long[] { 0, 2, 3, 4, 7, 8 }, t.Positions.data<long>().ToArray());
        Assert.Equal(new long[] { 2, 4, 5, 9, 3, 9 }, t.Targets.data<long>().ToArray());
        Assert.Equal(new float[] { 0, 0, 1, 1, 0, 1 }, t.IsAnswer.data<float>().ToArray());
        Assert.Equal(new float[] { 1, 1, 0, 0, 1, 0 }, t.IsLm.data<float>().ToArray());
        Assert.Equal(3f, t.AnswerCount.item<float>());
        Assert.Equal(3f, t.LmCount.item<float>());
        Assert.Equal(new long[] { 0, 0, 0, 0, 1, 1 }, t.Rows.data<long>().ToArray());
    }

    [Fact]
    public void ScheduleWarmsUpThenDecaysToATenth()
    {
        var t = new DemoModelTrainer(new DemoTrainingOptions { LearningRate = 1e-3, WarmupShare = 0.1 }, CPU);
        Assert.Equal(0, t.LearningRate(0), 12);
        Assert.Equal(0.5e-3, t.LearningRate(0.05), 12);
        Assert.Equal(1e-3, t.LearningRate(0.1), 12);
        Assert.Equal(0.55e-3, t.LearningRate(0.55), 12);
        Assert.Equal(1e-4, t.LearningRate(1), 12);
    }

    [Theory]
    [InlineData(16384, new[] { 512, 2048, 8192, 16384 })]
    [InlineData(4096, new[] { 512, 2048, 4096 })]
    [InlineData(1024, new[] { 512, 1024 })]
    [InlineData(256, new[] { 256 })]
    public void DefaultCurriculumEndsAtTheMaxLength(int max, int[] lengths)
    {
        var phases = DemoTrainingOptions.DefaultCurriculum(max);
        Assert.Equal(lengths, phases.Select(p => p.Length));
        Assert.Equal(1.0, phases.Sum(p => p.Share), 9);
    }

    [Theory]
    [InlineData("steps", "steps (0) must be at least 1")]
    [InlineData("short", "max length (100) must be at least 256")]
    [InlineData("long", "exceeds the model's max_position_embeddings (32768)")]
    [InlineData("batch", "batch tokens (0) must be positive")]
    [InlineData("phase", "phase length 8192 must lie in [256, 4096]")]
    [InlineData("time", "time limit (0 s) must be positive")]
    [InlineData("stride", "LM stride (0) must be at least 1")]
    [InlineData("heads", "heads (6) must be a multiple of kv heads (4)")]
    public void BadOptionsAreClearErrors(string what, string message)
    {
        var o = new DemoTrainingOptions();
        o = what switch
        {
            "steps" => o with { Steps = 0 },
            "short" => o with { MaxLength = 100 },
            "long" => o with { MaxLength = 32768 },
            "batch" => o with { BatchTokens = 0 },
            "phase" => o with { MaxLength = 4096, Curriculum = [new CurriculumPhase(8192, 1)] },
            "time" => o with { TimeLimitSeconds = 0 },
            "stride" => o with { LmStride = 0 },
            "heads" => o with { Architecture = DemoArchitecture.Demo with { Heads = 6, KvHeads = 4 } },
            _ => throw new ArgumentException(what),
        };
        var e = Assert.Throws<ArgumentException>(o.Validate);
        Assert.Contains(message, e.Message);
    }
}
