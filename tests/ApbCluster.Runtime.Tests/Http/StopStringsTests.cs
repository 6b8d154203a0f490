using ApbCluster.Runtime.Actors;

namespace ApbCluster.Runtime.Tests.Http;

/// <summary>What may be streamed while stop strings are set: never a character the final answer cuts.</summary>
public sealed class StopStringsTests
{
    [Theory]
    [InlineData("Hello", new[] { "\nUser:" }, 5)]      // nothing like the stop: all of it
    [InlineData("Hello\nUs", new[] { "\nUser:" }, 5)]  // "\nUs" may become the stop: held
    [InlineData("Hello\n", new[] { "\nUser:", "lo\n!" }, 3)] // the longest possible start wins
    [InlineData("abab", new[] { "abc" }, 2)]
    [InlineData("", new[] { "x" }, 0)]
    [InlineData("text", new string[0], 4)]
    public void Holds_back_only_what_could_still_become_a_stop(string answer, string[] stops, int safe) =>
        Assert.Equal(safe, StopStrings.SafeLength(answer, stops));

    [Fact]
    public void Streaming_chunk_by_chunk_never_shows_the_stop()
    {
        string[] stops = ["\nUser:", "END"];
        string[] chunks = ["The answer", " is 4.\n", "Us", "ually", " yes.\nU", "ser: more", " text"];
        var answer = ""; var streamed = ""; var sent = 0; var stopped = false;
        foreach (var c in chunks)
        {
            answer += c;
            var stop = StopStrings.FirstStop(answer, stops);
            var end = Math.Max(sent, stop >= 0 ? stop : StopStrings.SafeLength(answer, stops));
            streamed += answer[sent..end];
            sent = end;
            Assert.DoesNotContain("\nUser:", streamed);
            if (stop >= 0) { answer = answer[..stop]; stopped = true; break; }
        }
        Assert.True(stopped);
        Assert.Equal("The answer is 4.\nUsually yes.", answer);
        Assert.Equal(answer, streamed);
    }
}
