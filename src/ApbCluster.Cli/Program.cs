using System.CommandLine;
using System.CommandLine.Invocation;
using ApbCluster.Cli.Commands;

// `apb`: the command line of ApbCluster. Answers on stdout, progress and timings on stderr.
if (args.Length > 0 && args[0] == "admin")
    return await AdminVerb.RunAsync(args[1..]);

var root = new RootCommand("ApbCluster: long-context LLM inference across hosts with APB.");
root.Subcommands.Add(InfoCommand.Create());
root.Subcommands.Add(GenerateCommand.Create());
root.Subcommands.Add(LogitsCommand.Create());
root.Subcommands.Add(AskCommand.Create());
root.Subcommands.Add(LoadCommand.Create());
root.Subcommands.Add(DemoCommand.Create());
root.Subcommands.Add(BenchCommand.Create());
root.Subcommands.Add(EvalCommand.Create());
root.Subcommands.Add(TrainCommand.Create());
// Listed for help only: `admin` is dispatched above, its words belong to the node's palettes.
root.Subcommands.Add(new Command("admin", "The cluster's admin shell: apb admin [--endpoint HOST:PORT] [COMMAND ...] (apb admin help)."));

// No response files: "@user hello" is a prompt, not a file to expand.
var parsed = root.Parse(args, new ParserConfiguration { ResponseFileTokenReplacer = null });
return parsed.Action is ParseErrorAction ? ParseErrors.Report(parsed) : parsed.Invoke();
