using ApbCluster.Parallel.Serving;
using Xunit;

namespace ApbCluster.Parallel.Tests.Serving;

/// <summary>
/// <see cref="PrefillGate"/> with real threads: a decode-first prefill waits at a layer boundary for one step of each
/// query decoding then, and no more; concurrent never waits. Every wait below is a hang guard: the assertions are
/// about the order of events (which step a prefill saw), never about how long something took.
/// </summary>
public sealed class PrefillGateTests
{
    private static readonly TimeSpan Guard = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Concurrent_never_waits_for_a_decode()
    {
        var gate = new PrefillGate(PrefillPolicy.Concurrent);
        using var decode = gate.Enter();
        decode.Decoded(); // decoding, and it never takes another step
        using var prefill = gate.Enter();
        var layers = Run(() => { for (int i = 0; i < 8; i++) prefill.BeforePrefillLayer(CancellationToken.None); });
        await Within(layers, "a concurrent prefill waited for a decode");
        Assert.Equal(0, gate.Yields);
    }

    [Fact]
    public async Task Decode_first_does_not_wait_when_nothing_decodes()
    {
        var gate = new PrefillGate(PrefillPolicy.DecodeFirst);
        using var otherPrefill = gate.Enter(); // running, but no token yet: still prefilling
        using var prefill = gate.Enter();
        var layers = Run(() => { for (int i = 0; i < 8; i++) prefill.BeforePrefillLayer(CancellationToken.None); });
        await Within(layers, "a prefill waited with no decode running");
        Assert.Equal(0, gate.Yields);
    }

    [Fact]
    public async Task Decode_first_prefill_waits_for_the_running_decodes_next_step()
    {
        var gate = new PrefillGate(PrefillPolicy.DecodeFirst);
        using var decode = gate.Enter();
        decode.Decoded();
        long stepsDone = 1;
        using var prefill = gate.Enter();
        long seenAfterWait = -1;
        var layer = Run(() =>
        {
            prefill.BeforePrefillLayer(CancellationToken.None);
            seenAfterWait = Interlocked.Read(ref stepsDone);
        });
        Assert.True(SpinWait.SpinUntil(() => gate.Waiting == 1, Guard), "the prefill never waited");
        Interlocked.Increment(ref stepsDone); // counted before the gate hears of it: the prefill must see it
        decode.Decoded();
        await Within(layer, "the prefill still waits after the decode's step");
        Assert.Equal(2, seenAfterWait);
        Assert.Equal(1, gate.Yields);
    }

    [Fact]
    public async Task Decode_first_prefill_waits_for_every_decode_not_just_the_first_to_step()
    {
        var gate = new PrefillGate(PrefillPolicy.DecodeFirst);
        using var a = gate.Enter();
        using var b = gate.Enter();
        a.Decoded();
        b.Decoded();
        using var prefill = gate.Enter();
        var layer = Run(() => prefill.BeforePrefillLayer(CancellationToken.None));
        Assert.True(SpinWait.SpinUntil(() => gate.Waiting == 1, Guard), "the prefill never waited");

        a.Decoded();
        // Wait until the prefill has woken and looked again: had a's step been enough, it would have left Waiting then.
        Assert.True(SpinWait.SpinUntil(() => gate.Snapshot().Wakeups >= 1, Guard), "the prefill never woke");
        Assert.Equal(1, gate.Snapshot().Waiting);
        Assert.False(layer.IsCompleted);

        b.Decoded();
        await Within(layer, "the prefill still waits after both decodes stepped");
    }

    [Fact]
    public async Task A_decode_that_ends_releases_the_prefill()
    {
        var gate = new PrefillGate(PrefillPolicy.DecodeFirst);
        var decode = gate.Enter();
        decode.Decoded();
        using var prefill = gate.Enter();
        var layer = Run(() => prefill.BeforePrefillLayer(CancellationToken.None));
        Assert.True(SpinWait.SpinUntil(() => gate.Waiting == 1, Guard), "the prefill never waited");
        decode.Dispose(); // its last token was its last step (or it failed, or was cancelled)
        await Within(layer, "the prefill still waits for a query that ended");
        prefill.BeforePrefillLayer(CancellationToken.None); // and nothing is owed any more
    }

    [Fact]
    public async Task A_prefill_passes_every_layer_beside_a_decode_that_never_pauses_one_step_per_layer()
    {
        const int Layers = 16;
        var gate = new PrefillGate(PrefillPolicy.DecodeFirst);
        using var stop = new CancellationTokenSource(Guard);
        long steps = 0;
        var decode = gate.Enter();
        decode.Decoded();
        var decoder = Run(() =>
        {
            // Always busy: as soon as one step ends the next begins, as in Phase 2.
            while (!stop.IsCancellationRequested)
            {
                Interlocked.Increment(ref steps);
                decode.Decoded();
            }
            decode.Dispose();
        });
        using var prefill = gate.Enter();
        var stepsPerLayer = new List<long>();
        var layers = Run(() =>
        {
            for (int i = 0; i < Layers; i++)
            {
                long before = Interlocked.Read(ref steps);
                prefill.BeforePrefillLayer(stop.Token);
                stepsPerLayer.Add(Interlocked.Read(ref steps) - before);
            }
        });
        await Within(layers, "the prefill starved beside a busy decode");
        stop.Cancel();
        await Within(decoder, "the decoder did not stop");
        Assert.Equal(Layers, stepsPerLayer.Count);
        Assert.All(stepsPerLayer, s => Assert.True(s >= 1, $"a layer ran without the decode's step: {string.Join(",", stepsPerLayer)}"));
    }

    [Fact]
    public async Task Cancelling_the_query_ends_its_wait()
    {
        var gate = new PrefillGate(PrefillPolicy.DecodeFirst);
        using var decode = gate.Enter();
        decode.Decoded();
        using var prefill = gate.Enter();
        using var cancel = new CancellationTokenSource();
        var layer = Run(() => prefill.BeforePrefillLayer(cancel.Token));
        Assert.True(SpinWait.SpinUntil(() => gate.Waiting == 1, Guard), "the prefill never waited");
        cancel.Cancel();
        await Assert.ThrowsAsync<OperationCanceledException>(() => layer.WaitAsync(Guard, TestContext.Current.CancellationToken));
        Assert.Equal(0, gate.Waiting);
    }

    /// <summary>On a thread of its own (the gate blocks it, as it blocks a query's thread).</summary>
    private static Task Run(Action action) => Task.Factory.StartNew(action, TestContext.Current.CancellationToken,
        TaskCreationOptions.LongRunning, TaskScheduler.Default);

    private static async Task Within(Task task, string hang)
    {
        try { await task.WaitAsync(Guard, TestContext.Current.CancellationToken); }
        catch (TimeoutException) { Assert.Fail($"{hang} (hang guard: {Guard.TotalSeconds:0} s)"); }
    }

    [Theory]
    [InlineData("concurrent", PrefillPolicy.Concurrent)]
    [InlineData(" Decode-First ", PrefillPolicy.DecodeFirst)]
    public void Policy_words_parse(string word, PrefillPolicy expected)
    {
        Assert.True(PrefillPolicies.TryParse(word, out var policy));
        Assert.Equal(expected, policy);
        Assert.True(PrefillPolicies.TryParse(policy.Word(), out var again));
        Assert.Equal(policy, again);
    }

    [Fact]
    public void Unknown_policy_words_are_refused()
    {
        Assert.False(PrefillPolicies.TryParse("decode_first", out _));
        Assert.False(PrefillPolicies.TryParse("", out _));
        Assert.False(PrefillPolicies.TryParse(null, out _));
    }
}
