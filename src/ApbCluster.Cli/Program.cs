using System.CommandLine;
var root = new RootCommand("t");
var o = new Option<int>("--n") { Description = "x", DefaultValueFactory = _ => 3 };
var c = new Command("info", "d") { o };
c.SetAction(pr => { Console.WriteLine(pr.GetValue(o)); return 0; });
root.Subcommands.Add(c);
return root.Parse(args).Invoke();
