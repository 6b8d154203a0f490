using ApbCluster.Evaluation.Tasks;
using Xunit;

namespace ApbCluster.Evaluation.Tests;

public class GeneratorTests
{
    private static SampleGenerator Generator() => new(TinyEvalModel.Folder.Tokenizer);

    public static TheoryData<EvalTask> Tasks() => new(EvalTasks.All);

    [Theory]
    [MemberData(nameof(Tasks))]
    public void SameSeedGivesTheSameSample(EvalTask task)
    {
        var a = Generator().Generate(task, 1024, seed: 7, depth: 0.3);
        var b = Generator().Generate(task, 1024, seed: 7, depth: 0.3);
        Assert.Equal(a.Document, b.Document);
        Assert.Equal(a.Question, b.Question);
        Assert.Equal(a.Answers, b.Answers);
        Assert.Equal(a.DocumentIds, b.DocumentIds);
    }

    [Theory]
    [MemberData(nameof(Tasks))]
    public void DifferentSeedsGiveDifferentSamples(EvalTask task)
    {
        var g = Generator();
        var a = g.Generate(task, 1024, seed: 1, depth: 0.5);
        var b = g.Generate(task, 1024, seed: 2, depth: 0.5);
        Assert.NotEqual(a.Document, b.Document);
        Assert.NotEqual(a.Answers, b.Answers);
    }

    [Theory]
    [InlineData(0.1)]
    [InlineData(0.5)]
    [InlineData(0.9)]
    public void TheNeedleSitsAtTheRequestedDepth(double depth)
    {
        var s = Generator().Generate(EvalTask.SingleNeedle, 2048, seed: 3, depth: depth);
        double actual = (double)s.NeedlePositions[0] / s.DocumentIds.Length;
        Assert.InRange(actual, depth - 0.03, depth + 0.03);
        // The recorded position is where the needle's tokens really start.
        var tok = TinyEvalModel.Folder.Tokenizer;
        var tail = tok.Decode(s.DocumentIds.Skip(s.NeedlePositions[0]).Take(20).Select(i => (int)i), skipSpecial: true);
        Assert.StartsWith("One of the special", tail.TrimStart());
    }

    [Theory]
    [MemberData(nameof(Tasks))]
    public void TheAnswerIsRecoverableFromTheText(EvalTask task)
    {
        var s = Generator().Generate(task, 1024, seed: 11, depth: 0.4);
        foreach (var needle in s.Needles) Assert.Contains(needle, s.Document);
        foreach (var answer in s.Answers) Assert.Contains(answer, s.Document);
        Assert.All(s.Answers, a => Assert.Contains(s.Needles, n => n.Contains(a)));
        if (task == EvalTask.VariableTracking)
        {
            // The chain: the first variable holds the number asked about, each next one copies the previous.
            Assert.Contains($"VAR {s.Answers[0]} = ", s.Document);
            for (int i = 1; i < s.Answers.Count; i++) Assert.Contains($"VAR {s.Answers[i]} = VAR {s.Answers[i - 1]}.", s.Document);
        }
    }

    [Theory]
    [InlineData(EvalTask.SingleNeedle, 1024)]
    [InlineData(EvalTask.MultiKey, 2048)]
    [InlineData(EvalTask.MultiValue, 4096)]
    [InlineData(EvalTask.VariableTracking, 1536)]
    [InlineData(EvalTask.VariableTracking, 8192)]
    public void LengthsHitTheRequestedTokenCountWithinOnePercent(EvalTask task, int tokens)
    {
        var tok = TinyEvalModel.Folder.Tokenizer;
        for (long seed = 0; seed < 3; seed++)
        {
            var s = Generator().Generate(task, tokens, seed);
            Assert.Equal(tok.Encode(s.Document, addBos: true).Count, s.DocumentIds.Length);
            Assert.InRange(s.TotalTokens, tokens * 0.99, tokens * 1.01);
        }
    }

    [Fact]
    public void TheVariableChainSpansEveryBlockOfFourHosts()
    {
        var s = Generator().Generate(EvalTask.VariableTracking, 2048, seed: 4);
        int block = (s.DocumentIds.Length + 3) / 4;
        var chainBlocks = s.Answers.Select(v => s.Needles.Select((n, i) => (n, i)).First(x => x.n.StartsWith($"VAR {v} =")).i)
            .Select(i => s.NeedlePositions[i] / block).ToArray();
        Assert.Equal([0, 1, 2, 3], chainBlocks);
    }

    [Fact]
    public void TooShortALengthIsAClearError()
    {
        var e = Assert.Throws<ArgumentException>(() => Generator().Generate(EvalTask.VariableTracking, 100, seed: 0));
        Assert.Contains("too few", e.Message);
    }
}
