using System.Text;
using System.Text.Json;
using ApbCluster.Model.Tests.Support;
using Xunit;

namespace ApbCluster.Cli.Tests;

/// <summary>
/// Wrong usage as a user types it, through the real `apb` process: exit code 2, a short error on
/// stderr that names the option, file or limit, nothing on stdout, and no model run.
/// </summary>
public class UsageErrorTests
{
    private static readonly Lazy<string> Llama = new(() => TinyCheckpoint.Create(TinyCheckpointOptions.Llama with { KvHeads = 2 }));

    private static string TempFile(byte[] bytes)
    {
        var path = Path.Combine(Path.GetTempPath(), $"apb-usage-{Guid.NewGuid():N}.txt");
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private static void AssertUsage(ApbProcess.Result r, params string[] mentions)
    {
        Assert.True(r.ExitCode == 2, $"exit {r.ExitCode}\nstdout: {r.Stdout}\nstderr: {r.Stderr}");
        Assert.Equal("", r.Stdout);
        var lines = r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => !l.StartsWith("loaded ", StringComparison.Ordinal)).ToArray();
        Assert.True(lines.Length <= 3, r.Stderr); // a line or two, not the whole help
        Assert.StartsWith("error: ", lines[0]);
        foreach (var m in mentions) Assert.Contains(m, r.Stderr);
        Assert.DoesNotContain("System.", r.Stderr);
        Assert.DoesNotContain("(Parameter '", r.Stderr);
    }

    [Theory]
    [InlineData(new[] { "frobnicate" }, "'frobnicate'")]
    [InlineData(new[] { "ask", "--hosts", "four", "-q", "x" }, "--hosts")]
    [InlineData(new[] { "ask", "--context", "f.txt" }, "--question")]
    [InlineData(new string[0], "command")]
    public void Parse_errors_are_usage_errors_with_a_short_message(string[] args, string mention)
    {
        var r = ApbProcess.Run(args);
        AssertUsage(r, mention, "--help");
    }

    [Fact]
    public void Help_lists_admin_and_does_not_call_retaining_heads_required()
    {
        var root = ApbProcess.Run("--help");
        Assert.Equal(0, root.ExitCode);
        Assert.Contains("admin", root.Stdout);
        var ask = ApbProcess.Run("ask", "--help");
        var headsLine = ask.Stdout.Split('\n').Single(l => l.TrimStart().StartsWith("--retaining-heads", StringComparison.Ordinal));
        Assert.DoesNotContain("required", headsLine, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("optional", headsLine);
    }

    [Fact]
    public void A_prompt_starting_with_at_is_a_prompt_not_a_response_file()
    {
        var r = ApbProcess.Run("generate", "--model", Llama.Value, "--prompt", "@user hello", "-n", "2", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var prompt = JsonDocument.Parse(r.Stdout).RootElement.GetProperty("prompt_token_ids").GetArrayLength();
        Assert.True(prompt >= 5, r.Stdout); // "@user hello" tokenized, not expanded from a file
    }

    [Fact]
    public void Ask_refuses_impossible_numbers_before_running()
    {
        var context = TempFile(Encoding.UTF8.GetBytes("The quick brown fox jumps over the lazy dog. "));
        AssertUsage(ApbProcess.Run("ask", "--model", Llama.Value, "-c", context, "-q", "x", "--max-new-tokens", "-5"), "--max-new-tokens -5");
        AssertUsage(ApbProcess.Run("ask", "--model", Llama.Value, "-c", context, "-q", "x", "--hosts", "5000"), "--hosts 5000");
        AssertUsage(ApbProcess.Run("ask", "--model", Llama.Value, "-c", context, "-q", "x", "--hosts", "60"), "--hosts 60", "tokens");
    }

    [Fact]
    public void An_unknown_compressor_is_refused_naming_the_option_and_the_known_ones_in_process_and_for_a_cluster()
    {
        var context = TempFile(Encoding.UTF8.GetBytes("The quick brown fox jumps over the lazy dog. "));
        AssertUsage(ApbProcess.Run("ask", "--model", Llama.Value, "-c", context, "-q", "x", "--mode", "apb", "--compressor", "zip"),
            "--compressor 'zip'", "retaining, query or random");
        // Parsed before any connection: the cluster address is never dialled.
        AssertUsage(ApbProcess.Run("ask", "--cluster", "127.0.0.1:1", "-c", context, "-q", "x", "--mode", "apb", "--compressor", "zip"),
            "--compressor 'zip'", "retaining, query or random");
    }

    [Fact]
    public void Load_stall_refuses_options_that_cannot_measure_before_connecting()
    {
        // No router listens on port 9: each error must come from the options, before any connection is tried.
        AssertUsage(ApbProcess.Run("load", "--cluster", "127.0.0.1:9", "--stall", "--decode-tokens", "8", "--arrive-after", "8"), "--decode-tokens 8", "--arrive-after 8");
        AssertUsage(ApbProcess.Run("load", "--cluster", "127.0.0.1:9", "--stall", "--arrive-after", "1"), "--arrive-after 1");
        AssertUsage(ApbProcess.Run("load", "--cluster", "127.0.0.1:9", "--stall", "--repeat", "0"), "--repeat 0");
        AssertUsage(ApbProcess.Run("load", "--cluster", "127.0.0.1:9", "--stall", "--queries", "3"), "--queries", "--stall");
        AssertUsage(ApbProcess.Run("load", "--cluster", "127.0.0.1:9", "--decode-tokens", "300"), "--decode-tokens", "--stall");
    }

    [Fact]
    public void Context_files_must_be_utf8_text_and_not_empty()
    {
        var latin1 = TempFile([.. Encoding.UTF8.GetBytes("caf"), 0xE9, .. Encoding.UTF8.GetBytes(" au lait")]);
        AssertUsage(ApbProcess.Run("ask", "--model", Llama.Value, "-c", latin1, "-q", "x"), latin1, "byte 3", "UTF-8");
        var binary = TempFile([0x7F, 0x45, 0x4C, 0x46, 0x02, 0x01, 0x01, 0x00, 0xFF, 0xFE]);
        AssertUsage(ApbProcess.Run("ask", "--model", Llama.Value, "-c", binary, "-q", "x"), "byte 8");
        var empty = TempFile([]);
        AssertUsage(ApbProcess.Run("ask", "--model", Llama.Value, "-c", empty, "-q", "x"), "empty");
        AssertUsage(ApbProcess.Run("generate", "--model", Llama.Value, "--prompt-file", latin1), "--prompt-file", "byte 3");
    }

    /// <summary>The tiny model has 2,048 positions; the cluster's router refuses the same query with the same rule.</summary>
    [Fact]
    public void Ask_refuses_a_document_past_max_position_embeddings()
    {
        var longDoc = TempFile(Encoding.UTF8.GetBytes(string.Concat(Enumerable.Repeat("zq xj vk ", 400))));
        AssertUsage(ApbProcess.Run("ask", "--model", Llama.Value, "-c", longDoc, "-q", "x"), "max_position_embeddings", "2048");
    }

    [Fact]
    public void Passing_all_needs_no_anchor_and_says_so_when_given_one()
    {
        var context = TempFile(Encoding.UTF8.GetBytes(string.Join(' ', Enumerable.Repeat("The quick brown fox jumps over the lazy dog.", 10))));
        var r = ApbProcess.Run("ask", "--model", Llama.Value, "-c", context, "-q", "What jumps?", "--hosts", "3", "--passing", "all", "-n", "3", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var json = JsonDocument.Parse(r.Stdout).RootElement;
        Assert.Equal(0, json.GetProperty("plan").GetProperty("anchor").GetInt32());
        Assert.Contains(json.GetProperty("finish_reason").GetString(), new[] { "stop", "length" });
        AssertUsage(ApbProcess.Run("ask", "--model", Llama.Value, "-c", context, "-q", "x", "--passing", "all", "--anchor", "4"), "--anchor 4");
    }

    /// <summary>On the CPU-only build (CI, developers) bench's CUDA default must point at --device cpu.</summary>
    [Fact]
    public void Bench_without_cuda_says_to_use_the_cpu()
    {
        var r = ApbProcess.Run("bench", "--shape", "tiny", "--lengths", "64", "--modes", "dense", "--out", Path.Combine(Path.GetTempPath(), $"apb-bench-{Guid.NewGuid():N}"));
        if (r.ExitCode == 0 || !r.Stderr.Contains("CUDA")) Assert.Skip("this build and machine run CUDA: bench's default works here");
        AssertUsage(r, "--device cpu");
    }

    /// <summary>Python reads a UTF-8 file's leading U+FEFF as a character and HF tokenizes it; so do we.</summary>
    [Fact]
    public void Prompt_file_keeps_a_leading_byte_order_mark()
    {
        var file = TempFile([0xEF, 0xBB, 0xBF, .. Encoding.UTF8.GetBytes("Hello there")]);
        int[] Ids(params string[] prompt)
        {
            var r = ApbProcess.Run(["generate", "--model", Llama.Value, "-n", "1", "--json", .. prompt]);
            Assert.True(r.ExitCode == 0, r.Stderr);
            return JsonDocument.Parse(r.Stdout).RootElement.GetProperty("prompt_token_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        }
        var fromFile = Ids("--prompt-file", file);
        Assert.Equal(Ids("--prompt", "\uFEFFHello there"), fromFile);
        Assert.NotEqual(Ids("--prompt", "Hello there"), fromFile);
    }
}
