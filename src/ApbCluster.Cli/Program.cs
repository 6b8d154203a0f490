using System.CommandLine;
using ApbCluster.Cli.Commands;

// `apb`: the command line of ApbCluster. Answers on stdout, progress and timings on stderr.
if (args.Length > 0 && args[0] == "admin")
    return await AdminVerb.RunAsync(args[1..]);

var root = new RootCommand("ApbCluster: long-context LLM inference across hosts with APB.");
root.Subcommands.Add(InfoCommand.Create());
root.Subcommands.Add(GenerateCommand.Create());
root.Subcommands.Add(LogitsCommand.Create());
root.Subcommands.Add(AskCommand.Create());
root.Subcommands.Add(DemoCommand.Create());
root.Subcommands.Add(BenchCommand.Create());
root.Subcommands.Add(EvalCommand.Create());
root.Subcommands.Add(TrainCommand.Create());
return root.Parse(args).Invoke();
