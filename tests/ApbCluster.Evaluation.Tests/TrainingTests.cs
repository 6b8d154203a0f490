using ApbCluster.Evaluation;
using ApbCluster.Parallel.Compression;
using ApbCluster.Training;
using Xunit;
using static TorchSharp.torch;

namespace ApbCluster.Evaluation.Tests;

public class TrainingTests
{
    [Fact]
    public void ThirtyStepsReduceTheLossAndTheSavedHeadsLoadAndScore()
    {
        using var model = TinyEvalModel.Load();
        var log = new List<TrainingStep>();
        var trainer = new RetainingHeadTrainer(model, TinyEvalModel.Folder.Tokenizer);
        using var heads = trainer.Train(new RetainingHeadTrainingOptions { Steps = 30, SequenceLength = 384, Seed = 1 }, log.Add);

        Assert.Equal(30, log.Count);
        Assert.All(log, s => Assert.True(double.IsFinite(s.Loss)));
        double first = log.Take(5).Average(s => s.Loss), last = log.TakeLast(5).Average(s => s.Loss);
        Assert.True(last < first, $"loss did not fall: first-5 mean {first:G4}, last-5 mean {last:G4}");

        var dir = Path.Combine(Path.GetTempPath(), "apb-heads-" + Guid.NewGuid().ToString("N")[..8]);
        var path = Path.Combine(dir, "heads.safetensors");
        RetainingHeadsFile.Save(path, heads.ToCompressor());
        RetainingHeadTrainer.WriteLossCsv(Path.Combine(dir, "loss.csv"), log);
        Assert.Equal(31, File.ReadAllLines(Path.Combine(dir, "loss.csv")).Length);

        var c = model.Config;
        var loaded = RetainingHeadsFile.Load(path, c, CPU, ScalarType.Float32);
        Assert.Equal(c.NumLayers, loaded.Layers);
        int s = 12;
        var input = new CompressorInput(1, 0, randn(1, s, c.NumHeads, c.HeadDim), randn(1, s, c.NumKvHeads, c.HeadDim),
            randn(1, s, c.NumKvHeads, c.HeadDim), randn(1, s, c.NumKvHeads, c.HeadDim));
        var scores = loaded.Score(input);
        Assert.Equal(new long[] { 1, s, c.NumKvHeads }, scores.shape);
        Assert.True(scores.isfinite().all().item<bool>());
        // The file holds exactly what was trained.
        var expected = heads.ToCompressor().Score(input);
        Assert.True(scores.allclose(expected, 1e-5, 1e-6));
    }

    [Fact]
    public void TheTimeLimitStopsAfterTheStepThatReachesIt()
    {
        using var model = TinyEvalModel.Load();
        var log = new List<TrainingStep>();
        var trainer = new RetainingHeadTrainer(model, TinyEvalModel.Folder.Tokenizer);
        using var heads = trainer.Train(new RetainingHeadTrainingOptions { Steps = 1000, SequenceLength = 384, TimeLimit = TimeSpan.FromMilliseconds(1) }, log.Add);
        // The first step always runs; it takes longer than the limit, so no second one starts.
        Assert.Single(log);
        Assert.NotNull(heads.ToCompressor());
    }
}
