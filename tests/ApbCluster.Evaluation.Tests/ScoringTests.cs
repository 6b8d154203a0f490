using ApbCluster.Evaluation.Scoring;
using ApbCluster.Evaluation.Tasks;
using Xunit;

namespace ApbCluster.Evaluation.Tests;

public class ScoringTests
{
    [Theory]
    [InlineData(" 123456", true)]
    [InlineData("123456.", true)]
    [InlineData("  123456 \nQuestion: more text", true)]
    [InlineData("\n 123456", true)]
    [InlineData(" 1234567", false)]
    [InlineData(" 123456 and 7", false)]
    [InlineData("", false)]
    public void ExactMatchUsesTheFirstLine(string prediction, bool correct) =>
        Assert.Equal(correct, AnswerScorer.IsCorrect(ScoringRule.Exact, ["123456"], prediction));

    [Fact]
    public void WhitespaceIsNormalised()
    {
        Assert.Equal("a b c", AnswerScorer.Normalize("  a \t b\u00a0  c "));
        Assert.True(AnswerScorer.IsCorrect(ScoringRule.Exact, ["crimson  falcon"], " crimson\tfalcon "));
    }

    [Fact]
    public void MultiValueNeedsEveryValueInAnyOrder()
    {
        string[] expected = ["111111", "222222", "333333"];
        Assert.True(AnswerScorer.IsCorrect(ScoringRule.AllPresent, expected, " 333333, 111111, 222222"));
        Assert.True(AnswerScorer.IsCorrect(ScoringRule.AllPresent, expected, "111111 222222 333333 444444"));
        Assert.False(AnswerScorer.IsCorrect(ScoringRule.AllPresent, expected, " 111111, 222222"));
        Assert.False(AnswerScorer.IsCorrect(ScoringRule.AllPresent, expected, " 1111112, 222222, 333333"), "whole words only");
        Assert.False(AnswerScorer.IsCorrect(ScoringRule.AllPresent, expected, " 111111, 222222\n333333"), "first line only");
    }
}
