using System.Text.RegularExpressions;
using System.Xml.Linq;
using Akka.Configuration;
using ApbCluster.Admin;
using ApbCluster.Runtime.Config;
using ApbCluster.Runtime.Hosting;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace ApbCluster.Runtime.Tests.Ops;

/// <summary>
/// What can be checked of docker/ without an engine, in every test run: the compose file parses
/// (anchors and merge keys resolved), every variable it sets is one apb-node reads and accepts, GPU
/// hosts reserve exactly one GPU, the documented `exec` commands name real services, host ports do not
/// clash, and the Dockerfile runs what the build publishes on a base that matches TorchSharp's libtorch.
/// The images themselves are built and run on a real engine by scripts/compose-smoke.sh (CI).
/// </summary>
public sealed class ComposeFileTests
{
    private static readonly string Root = FindRoot();

    [Fact]
    public void Every_environment_variable_in_compose_is_read_and_accepted_by_the_node()
    {
        var services = Services();
        Assert.Contains("router", services.Keys);
        Assert.Contains("cpu-router", services.Keys);
        foreach (var (name, service) in services)
        {
            var env = Environment(service);
            Assert.NotEmpty(env);
            foreach (var key in env.Keys)
                Assert.True(EnvironmentOverlay.Variables.Contains(key), $"service {name} sets {key}, which apb-node does not read");
            // The node accepts the values as written (parses ports, roles, seeds, counts).
            var config = NodeConfig.Load(env.ToDictionary(kv => kv.Key, kv => (string?)kv.Value));
            Assert.NotEmpty(config.Settings.Roles);
            Assert.Equal("127.0.0.1", config.Settings.AdminHost); // admin never leaves the container
            config.Join.RequireSecretOrInsecure(); // every node starts: it has a join secret ...
            Assert.False(config.Join.AllowInsecure); // ... and none registers hosts without one
        }
        // One secret for the whole cluster, from the operator's environment when set.
        Assert.Single(services.Values.Select(s => ((YamlMappingNode)s["environment"]).Children
            .Single(kv => kv.Key.ToString() == "APB_JOIN_SECRET").Value.ToString()).Distinct());
    }

    [Fact]
    public void Services_have_roles_seeds_health_checks_restart_policies_and_one_gpu_per_host()
    {
        foreach (var (name, service) in Services())
        {
            Assert.Equal("unless-stopped", Scalar(service, "restart"));
            var health = (YamlSequenceNode)((YamlMappingNode)service["healthcheck"])["test"];
            Assert.Equal("apb-health", health.Children[1].ToString());
            Assert.Single(((YamlSequenceNode)service["profiles"]).Children);
            var env = Environment(service);
            Assert.Equal("router:4053", env["CLUSTER_SEEDS"]);
            if (env["CLUSTER_ROLES"] == "gpu-host" && env.GetValueOrDefault("APB_DEVICE", "cpu").StartsWith("cuda", StringComparison.Ordinal))
            {
                var devices = (YamlSequenceNode)Path(service, "deploy", "resources", "reservations", "devices");
                var ids = (YamlSequenceNode)((YamlMappingNode)devices.Children.Single())["device_ids"];
                Assert.Single(ids.Children);
            }
        }
        var gpuIds = Services().Values.Where(s => s.Children.ContainsKey("deploy"))
            .Select(s => ((YamlSequenceNode)((YamlMappingNode)((YamlSequenceNode)Path(s, "deploy", "resources", "reservations", "devices")).Children[0])["device_ids"]).Children[0].ToString())
            .ToList();
        Assert.Equal(gpuIds.Count, gpuIds.Distinct().Count()); // no GPU reserved twice
    }

    [Fact]
    public void Dockerfile_runs_what_the_projects_publish()
    {
        var dockerfile = File.ReadAllText(System.IO.Path.Combine(Root, "docker", "Dockerfile"));
        Assert.Equal("apb-node", AssemblyName("src/ApbCluster.Node/ApbCluster.Node.csproj"));
        Assert.Equal("apb", AssemblyName("src/ApbCluster.Cli/ApbCluster.Cli.csproj"));
        foreach (Match publish in Regex.Matches(dockerfile, @"dotnet publish (\S+\.csproj)"))
            Assert.True(File.Exists(System.IO.Path.Combine(Root, publish.Groups[1].Value)), $"Dockerfile publishes missing {publish.Groups[1].Value}");
        Assert.Contains("ln -s /opt/apb/node/apb-node /usr/local/bin/apb-node", dockerfile); // each app in its own folder
        Assert.Contains("ln -s /opt/apb/cli/apb /usr/local/bin/apb", dockerfile);
        Assert.Equal(2, Regex.Matches(dockerfile, @"ENTRYPOINT \[""apb-node""\]").Count);
        Assert.Equal(2, Regex.Matches(dockerfile, @"^USER apb$", RegexOptions.Multiline).Count); // never root
        Assert.Contains("-p:ApbGpu=true", dockerfile);
        Assert.Contains("APB_TORCH_LIB=", dockerfile);
        Assert.Contains("FROM ${DOTNET_SDK} AS restore", dockerfile);
        Assert.Contains("mcr.microsoft.com/dotnet/sdk:10.0", dockerfile);
        // apb-node's HTTP front door needs ASP.NET Core in both images, taken from the build argument.
        Assert.Contains("ARG DOTNET_ASPNET=mcr.microsoft.com/dotnet/aspnet:10.0", dockerfile);
        Assert.Contains("FROM aspnet AS cpu", dockerfile);
        Assert.Contains("COPY --from=aspnet /usr/share/dotnet /usr/share/dotnet", dockerfile);
        Assert.DoesNotContain("dotnet/runtime:", dockerfile);
        // The apphost the image links to: the build here produces the same name (Linux apphost, no extension).
        Assert.True(File.Exists(System.IO.Path.Combine(AppContext.BaseDirectory, "apb-node")) ||
                    File.Exists(System.IO.Path.Combine(AppContext.BaseDirectory, "apb-node.dll")), "apb-node is not in the build output");
        var health = File.ReadAllText(System.IO.Path.Combine(Root, "docker", "apb-health.sh"));
        Assert.Contains("apb admin --endpoint", health);
        Assert.Contains("node health", health);
    }

    [Fact]
    public void The_gpu_base_ships_the_libtorch_version_TorchSharp_binds()
    {
        var dockerfile = File.ReadAllText(System.IO.Path.Combine(Root, "docker", "Dockerfile"));
        var torchBase = Regex.Match(dockerfile, @"ARG TORCH_BASE=pytorch/pytorch:(\d+\.\d+)\.\d+-cuda");
        Assert.True(torchBase.Success, "TORCH_BASE is not a pytorch/pytorch:X.Y.Z-cuda... tag");
        // The libtorch that TorchSharp-cpu restored for these tests is the one TorchSharp was built against.
        var assets = File.ReadAllText(System.IO.Path.Combine(Root, "tests", "ApbCluster.Runtime.Tests", "obj", "project.assets.json"));
        var libtorch = Regex.Match(assets, @"""libtorch-cpu-linux-x64/(\d+\.\d+)\.\d+""");
        Assert.True(libtorch.Success, "libtorch-cpu-linux-x64 not among the restored packages");
        Assert.Equal(libtorch.Groups[1].Value, torchBase.Groups[1].Value);
        Assert.DoesNotContain("python3.", dockerfile.Split("APB_TORCH_LIB=")[1].Split('\n')[0]); // found at build time, not assumed
    }

    [Fact]
    public void Documented_exec_commands_name_real_services()
    {
        var services = Services();
        var texts = new[] { System.IO.Path.Combine(Root, "docs", "operations.md"), System.IO.Path.Combine(Root, "docker", "docker-compose.yml") }
            .Select(File.ReadAllText);
        var execs = texts.SelectMany(t => Regex.Matches(t, @"docker(?: |-)compose [^\n`]*?exec (?:-T )?([a-z0-9-]+)").Select(m => m.Groups[1].Value)).ToList();
        Assert.Contains("cpu-router", execs);
        foreach (var service in execs)
            Assert.True(services.ContainsKey(service), $"the docs run `exec {service}`, but the compose file has no service {service}");
    }

    [Fact]
    public void Profiles_publish_distinct_host_ports_and_models_are_never_created_empty()
    {
        var hostPorts = Services().Values.Where(s => s.Children.ContainsKey("ports"))
            .SelectMany(s => ((YamlSequenceNode)s["ports"]).Children.Select(p => p.ToString()))
            .Select(p => Regex.Replace(p, @"\$\{[A-Z_]+:-(\d+)\}", "$1").Split(':')[1])
            .ToList();
        Assert.NotEmpty(hostPorts);
        Assert.Equal(hostPorts.Count, hostPorts.Distinct().Count());
        foreach (var (name, service) in Services().Where(s => s.Value.Children.ContainsKey("volumes")))
            foreach (var volume in ((YamlSequenceNode)service["volumes"]).Children)
            {
                // The short form "host:container" makes a missing host folder silently (empty, root-owned).
                var mount = Assert.IsType<YamlMappingNode>(volume, exactMatch: false);
                Assert.Equal("bind", Scalar(mount, "type"));
                Assert.Equal("true", Scalar(mount, "read_only"));
                Assert.Contains("APB_MODELS", Scalar(mount, "source"));
            }
    }

    [Fact]
    public async Task Health_check_contract_holds_on_a_real_node()
    {
        var port = FreePort();
        var adminPort = FreePort();
        var config = NodeConfig.Load(new Dictionary<string, string?>
        {
            ["CLUSTER_PORT"] = port.ToString(), ["CLUSTER_SEEDS"] = $"127.0.0.1:{port}", ["CLUSTER_ROLES"] = "router",
            ["APB_ADMIN_PORT"] = adminPort.ToString(), ["APB_SYSTEM_NAME"] = "apbhealth", ["APB_JOIN_SECRET"] = "health-check-test-secret",
        }, extraHocon: ConfigurationFactory.ParseString("akka.loglevel = WARNING"));
        await using var node = ApbNode.Start(config);
        var deadline = DateTime.UtcNow.AddSeconds(20);
        string output;
        do
        {
            // What apb-health runs: a router with no hosts is a member, but unhealthy (exit 1), and says why.
            var writer = new StringWriter();
            var code = await AdminShell.RunAsync($"127.0.0.1:{adminPort}", ["node", "health", "--json"], writer);
            output = writer.ToString();
            Assert.Equal(AdminExitCodes.CommandError, code);
            var json = System.Text.Json.Nodes.JsonNode.Parse(output)!;
            Assert.False((bool)json["healthy"]!);
            if (json["checks"]!.AsArray().Any(c => (string)c!["name"]! == "member" && (bool)c["ok"]!))
            {
                var router = json["checks"]!.AsArray().Single(c => (string)c!["name"]! == "router")!;
                Assert.False((bool)router["ok"]!);
                Assert.Contains("0 reachable registered host(s), expects at least 1", (string)router["detail"]!);
                return;
            }
            await Task.Delay(250, TestContext.Current.CancellationToken);
        } while (DateTime.UtcNow < deadline);
        Assert.Fail($"never Up: {output}");
    }

    private static Dictionary<string, YamlMappingNode> Services()
    {
        using var reader = new StreamReader(System.IO.Path.Combine(Root, "docker", "docker-compose.yml"));
        var yaml = new YamlStream();
        yaml.Load(new MergingParser(new Parser(reader))); // resolves <<: *anchor
        var root = (YamlMappingNode)yaml.Documents[0].RootNode;
        return ((YamlMappingNode)root["services"]).Children.ToDictionary(kv => kv.Key.ToString(), kv => (YamlMappingNode)kv.Value);
    }

    /// <summary>A service's environment as compose passes it when the operator sets nothing (${VAR:-default} is the default).</summary>
    private static Dictionary<string, string> Environment(YamlMappingNode service) =>
        ((YamlMappingNode)service["environment"]).Children.ToDictionary(kv => kv.Key.ToString(),
            kv => Regex.Replace(kv.Value.ToString(), @"\$\{[A-Z_]+:-([^}]*)\}", "$1"));

    private static string Scalar(YamlMappingNode node, string key) => ((YamlScalarNode)node[key]).Value!;

    private static YamlNode Path(YamlMappingNode node, params string[] keys) =>
        keys.Aggregate((YamlNode)node, (n, k) => ((YamlMappingNode)n)[k]);

    private static string AssemblyName(string csproj) =>
        XDocument.Load(System.IO.Path.Combine(Root, csproj)).Descendants("AssemblyName").Single().Value;

    private static int FreePort()
    {
        using var l = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        l.Start();
        return ((System.Net.IPEndPoint)l.LocalEndpoint).Port;
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(System.IO.Path.Combine(dir.FullName, "ApbCluster.sln"))) return dir.FullName;
        throw new DirectoryNotFoundException("repository root (ApbCluster.sln) not found above the test binaries");
    }
}
