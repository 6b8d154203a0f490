using System.CommandLine;
using ApbCluster.Model.KvStores;

namespace ApbCluster.Cli.Commands;

/// <summary>
/// --kv full|shadowkv and ShadowKV's --shadow-* parameters, shared by the verbs that decode. `ask` takes the switch;
/// `eval` takes only the parameters (its *-shadowkv modes switch).
/// </summary>
internal sealed class KvStoreCliOptions
{
    private static readonly ShadowKvOptions Defaults = new();

    public readonly Option<string> Kv = new("--kv") { Description = "full (default: every key, as prefilled) or shadowkv (low-rank keys, sparse decode over chunk landmarks)", DefaultValueFactory = _ => "full" };
    public readonly Option<int> Rank = new("--shadow-rank") { Description = $"ShadowKV: rank of the pre-RoPE keys' factorisation (default {Defaults.Rank})", DefaultValueFactory = _ => Defaults.Rank };
    public readonly Option<int> Chunk = new("--shadow-chunk") { Description = $"ShadowKV: tokens per chunk (default {Defaults.Chunk})", DefaultValueFactory = _ => Defaults.Chunk };
    public readonly Option<int> Budget = new("--shadow-budget") { Description = $"ShadowKV: tokens rebuilt per KV head and step, a multiple of --shadow-chunk (default {Defaults.Budget})", DefaultValueFactory = _ => Defaults.Budget };
    public readonly Option<int> Outliers = new("--shadow-outliers") { Description = $"ShadowKV: chunks per KV head kept exactly (default {Defaults.Outliers})", DefaultValueFactory = _ => Defaults.Outliers };
    public readonly Option<int> Local = new("--shadow-local") { Description = $"ShadowKV: last chunks of the context kept exactly (default {Defaults.Local})", DefaultValueFactory = _ => Defaults.Local };
    public readonly Option<string> Values = new("--shadow-values") { Description = "ShadowKV: where the values live, device (default) or host (pinned host memory on CUDA)", DefaultValueFactory = _ => "device" };

    private readonly bool _withSwitch;

    public KvStoreCliOptions(bool withSwitch = true) => _withSwitch = withSwitch;

    private IEnumerable<Option> Parameters() => [Rank, Chunk, Budget, Outliers, Local, Values];

    public void AddTo(Command c)
    {
        if (_withSwitch) c.Options.Add(Kv);
        foreach (var o in Parameters()) c.Options.Add(o);
    }

    /// <summary>The decode's KV store: null for full, else the validated ShadowKV parameters.</summary>
    public ShadowKvOptions? Parse(ParseResult pr)
    {
        string choice = pr.GetValue(Kv)!.Trim().ToLowerInvariant();
        if (choice == "full")
        {
            var given = Parameters().FirstOrDefault(o => pr.GetResult(o) is { Implicit: false });
            if (given is not null) throw new CliUsageException($"{given.Name} applies with --kv shadowkv.");
            return null;
        }
        if (choice != "shadowkv") throw new CliUsageException($"--kv '{choice}': expected full or shadowkv.");
        return ShadowKv(pr);
    }

    /// <summary>The --shadow-* parameters, validated (eval's *-shadowkv modes).</summary>
    public ShadowKvOptions ShadowKv(ParseResult pr)
    {
        var values = pr.GetValue(Values)!.Trim().ToLowerInvariant() switch
        {
            "device" => ShadowKvValues.Device,
            "host" => ShadowKvValues.Host,
            var v => throw new CliUsageException($"--shadow-values '{v}': expected device or host."),
        };
        var o = new ShadowKvOptions
        {
            Rank = pr.GetValue(Rank), Chunk = pr.GetValue(Chunk), Budget = pr.GetValue(Budget),
            Outliers = pr.GetValue(Outliers), Local = pr.GetValue(Local), Values = values,
        };
        try { return o.Validate("--shadow-"); }
        catch (ShadowKvOptionsException e) { throw new CliUsageException(e.Message); }
    }
}
