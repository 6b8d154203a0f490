using System.CommandLine;
using ApbCluster.Parallel.Kernels;

namespace ApbCluster.Cli.Commands;

/// <summary>
/// --prefill-attention full|critiprefill and CritiPrefill's --criti-* parameters, shared by the verbs that prefill.
/// `ask` and `generate` take the switch; `eval` and `bench` take only the parameters (their *-criti modes switch).
/// </summary>
internal sealed class PrefillAttentionCliOptions
{
    private static readonly CritiPrefillOptions Defaults = new();

    public readonly Option<string> Attention = new("--prefill-attention") { Description = "full (default) or critiprefill (segment-wise criticality pruning of the prefill's causal attention; decode unchanged)", DefaultValueFactory = _ => "full" };
    public readonly Option<int> Budget = new("--criti-budget") { Description = $"CritiPrefill: keys each segment keeps from its past, a multiple of --criti-block (default {Defaults.Budget})", DefaultValueFactory = _ => Defaults.Budget };
    public readonly Option<int> Segment = new("--criti-segment") { Description = $"CritiPrefill: queries per segment, a multiple of --criti-block (default {Defaults.Segment})", DefaultValueFactory = _ => Defaults.Segment };
    public readonly Option<int> Block = new("--criti-block") { Description = $"CritiPrefill: keys per block (default {Defaults.Block})", DefaultValueFactory = _ => Defaults.Block };
    public readonly Option<int> Threshold = new("--criti-threshold") { Description = $"CritiPrefill: segments starting before this global position attend in full (default {Defaults.Threshold})", DefaultValueFactory = _ => Defaults.Threshold };

    private readonly bool _withSwitch;

    public PrefillAttentionCliOptions(bool withSwitch = true) => _withSwitch = withSwitch;

    public void AddTo(Command c)
    {
        if (_withSwitch) c.Options.Add(Attention);
        c.Options.Add(Budget);
        c.Options.Add(Segment);
        c.Options.Add(Block);
        c.Options.Add(Threshold);
    }

    /// <summary>The prefill's attention: null for full, else the validated CritiPrefill parameters.</summary>
    public CritiPrefillOptions? Parse(ParseResult pr)
    {
        string choice = pr.GetValue(Attention)!.Trim().ToLowerInvariant();
        if (choice == "full")
        {
            var given = new Option<int>[] { Budget, Segment, Block, Threshold }.FirstOrDefault(o => pr.GetResult(o) is { Implicit: false });
            if (given is not null) throw new CliUsageException($"{given.Name} applies with --prefill-attention critiprefill.");
            return null;
        }
        if (choice != "critiprefill") throw new CliUsageException($"--prefill-attention '{choice}': expected full or critiprefill.");
        return Parameters(pr);
    }

    /// <summary>The --criti-* parameters, validated (eval's and bench's *-criti modes).</summary>
    public CritiPrefillOptions Parameters(ParseResult pr)
    {
        var o = new CritiPrefillOptions
        {
            Budget = pr.GetValue(Budget), Segment = pr.GetValue(Segment), Block = pr.GetValue(Block), Threshold = pr.GetValue(Threshold),
        };
        try { return o.Validate("--criti-"); }
        catch (CritiPrefillOptionsException e) { throw new CliUsageException(e.Message); }
    }
}
