using System.CommandLine;

namespace ApbCluster.Cli.Commands;

/// <summary>
/// `apb demo`, the README's main command. By default <see cref="RetrievalDemo"/>: the bundled trained demo model
/// answers a needle and a variable-chain question on virtual hosts with dense, star and APB. With --exactness,
/// <see cref="ExactnessDemo"/>: every mode on a random model, the exact ones checked token for token against dense.
/// </summary>
internal static class DemoCommand
{
    public static Command Create()
    {
        var model = new Option<string?>("--model", "-m") { Description = "model folder (default: the bundled demo model, demo-model/ beside apb)" };
        var tokens = new Option<int>("--tokens") { Description = "document length in tokens", DefaultValueFactory = _ => 8192 };
        var hosts = new Option<int>("--hosts") { Description = "virtual hosts", DefaultValueFactory = _ => 4 };
        var seed = new Option<long>("--seed") { Description = "sample generator seed", DefaultValueFactory = _ => 0 };
        var device = new Option<string>("--device") { Description = "auto (a GPU when this build can use one and one is visible, else the CPU), cpu, cuda or cuda:N", DefaultValueFactory = _ => "auto" };
        var exactness = new Option<bool>("--exactness") { Description = "instead: every mode (dense, ring, ulysses, star, apb) on a random model, exact modes checked against dense" };
        var steps = new Option<int>("--max-new-tokens", "-n") { Description = "with --exactness: tokens generated per mode", DefaultValueFactory = _ => 16 };
        var cmd = new Command("demo", "APB on virtual hosts answering questions about a long document with the bundled demo model, next to dense and star.")
            { model, tokens, hosts, seed, device, exactness, steps };
        cmd.SetAction(pr => CliRun.Guard(() => pr.GetValue(exactness)
            ? ExactnessDemo.Run(pr.GetValue(tokens), pr.GetValue(hosts), pr.GetValue(steps))
            : RetrievalDemo.Run(pr.GetValue(model) ?? RetrievalDemo.BundledModel, pr.GetValue(tokens), pr.GetValue(hosts), pr.GetValue(seed), pr.GetValue(device)!)));
        return cmd;
    }
}
