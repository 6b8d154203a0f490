using ApbCluster.Cli.Load;
using Xunit;

namespace ApbCluster.Cli.Tests;

/// <summary>How `apb load --stall` files a running query's gaps between tokens against another query's prefill window.</summary>
public sealed class StallGapsTests
{
    [Fact]
    public void Gaps_are_split_at_the_arrival_and_at_the_arriving_querys_first_token()
    {
        // Tokens at 0, 10, 20, 30 | arrival 35 | 80, 150 | first token of the other 160 | 170, 180.
        double[] tokens = [0, 10, 20, 30, 80, 150, 170, 180];
        var gaps = StallGaps.Of(tokens, arrivalMs: 35, prefillEndMs: 160);
        Assert.Equal([10.0, 10, 10], gaps.Before);
        Assert.Equal([50.0, 70, 20], gaps.During); // 30->80 overlaps the arrival, 150->170 the first token
        Assert.Equal([10.0], gaps.After);
        Assert.Equal(10, gaps.BeforeMedianMs);
        Assert.Equal(70, gaps.DuringMaxMs);
        Assert.Equal(70, gaps.DuringP95Ms);
        Assert.Equal(10, gaps.AfterMedianMs);
    }

    [Fact]
    public void A_gap_ending_exactly_at_the_arrival_is_before_it_and_one_starting_at_the_first_token_after_it()
    {
        var gaps = StallGaps.Of([0, 10, 20, 40, 50], arrivalMs: 10, prefillEndMs: 40);
        Assert.Equal([10.0], gaps.Before);
        Assert.Equal([10.0, 20], gaps.During);
        Assert.Equal([10.0], gaps.After);
    }

    [Fact]
    public void No_token_during_the_window_means_one_gap_spanning_it()
    {
        var gaps = StallGaps.Of([0, 5, 10, 500, 505], arrivalMs: 12, prefillEndMs: 480);
        Assert.Equal([490.0], gaps.During);
        Assert.Equal(490, gaps.DuringMaxMs);
    }

    [Fact]
    public void Times_out_of_order_are_refused()
    {
        Assert.Throws<ArgumentException>(() => StallGaps.Of([0, 10, 5], 1, 2));
        Assert.Throws<ArgumentException>(() => StallGaps.Of([0, 10], arrivalMs: 5, prefillEndMs: 4));
    }
}
