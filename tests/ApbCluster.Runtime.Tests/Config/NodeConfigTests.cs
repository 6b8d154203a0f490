using Akka.Actor;
using Akka.Event;
using ApbCluster.Contracts.Serialization;
using ApbCluster.Parallel.Serving;
using ApbCluster.Runtime.Config;
using ApbCluster.Runtime.Logging;

namespace ApbCluster.Runtime.Tests.Config;

public sealed class NodeConfigTests
{
    private static NodeConfig Load(params (string Name, string Value)[] env) =>
        NodeConfig.Load(env.ToDictionary(e => e.Name, e => (string?)e.Value));

    [Fact]
    public void Baseline_alone_gives_documented_defaults()
    {
        var config = Load();
        var s = config.Settings;
        Assert.Equal(("127.0.0.1", 4053, 9110, 1, "cpu"), (s.Hostname, s.Port, s.AdminPort, s.VirtualHosts, s.Device));
        Assert.Empty(s.Roles);
        Assert.Empty(s.Seeds);
        Assert.Equal("cluster", config.Hocon.GetString("akka.actor.provider"));
        Assert.Equal(4L * 1024 * 1024, config.Hocon.GetByteSize("akka.remote.dot-netty.tcp.maximum-frame-size"));
        Assert.Equal("keep-majority", config.Hocon.GetString("akka.cluster.split-brain-resolver.active-strategy"));
        Assert.Contains("embedded hocon/apb-baseline.hocon", config.Sources);
        Assert.False(s.BatchDecode);
        Assert.True(Load(("APB_BATCH_DECODE", "on")).Settings.BatchDecode);
    }

    [Fact]
    public void Environment_overlay_sets_address_seeds_roles_and_apb_values()
    {
        var config = Load(("CLUSTER_IP", "10.1.2.3"), ("CLUSTER_PORT", "5000"), ("CLUSTER_SEEDS", "10.1.2.3:5000, akka.tcp://apb@10.1.2.4:5001"),
            ("CLUSTER_ROLES", "router,GPU-HOST"), ("APB_ADMIN_PORT", "9999"), ("APB_VIRTUAL_HOSTS", "3"), ("APB_DEVICE", "cuda:1"),
            ("APB_MODEL_DIR", "/models/llama"));
        var s = config.Settings;
        Assert.Equal("akka.tcp://apb@10.1.2.3:5000", s.SelfAddress);
        Assert.Equal(["akka.tcp://apb@10.1.2.3:5000", "akka.tcp://apb@10.1.2.4:5001"], s.Seeds);
        Assert.Equal([NodeRoles.Router, NodeRoles.GpuHost], s.Roles);
        Assert.Equal((9999, 3, "cuda:1", "/models/llama"), (s.AdminPort, s.VirtualHosts, s.Device, s.ModelDir));
        var banner = config.Describe();
        Assert.Contains("akka.tcp://apb@10.1.2.3:5000", banner);
        Assert.Contains("CLUSTER_SEEDS", banner);
    }

    [Theory]
    [InlineData("CLUSTER_PORT", "http", "CLUSTER_PORT='http' is not a TCP port")]
    [InlineData("CLUSTER_PORT", "70000", "CLUSTER_PORT='70000' is not a TCP port")]
    [InlineData("APB_ADMIN_PORT", "-1", "APB_ADMIN_PORT='-1' is not a TCP port")]
    [InlineData("CLUSTER_ROLES", "router,banana", "CLUSTER_ROLES has unknown role 'banana'")]
    [InlineData("CLUSTER_SEEDS", "justahost", "CLUSTER_SEEDS entry 'justahost'")]
    [InlineData("CLUSTER_SEEDS", "h:port", "CLUSTER_SEEDS='port' is not a TCP port")]
    [InlineData("APB_VIRTUAL_HOSTS", "0", "APB_VIRTUAL_HOSTS='0' must be a whole number")]
    [InlineData("APB_DEVICE", "tpu", "APB_DEVICE='tpu' is not a device")]
    [InlineData("APB_LOG_LEVEL", "chatty", "APB_LOG_LEVEL='chatty'")]
    [InlineData("APB_BATCH_DECODE", "sometimes", "APB_BATCH_DECODE='sometimes' must be on or off")]
    [InlineData("APB_PREFILL_POLICY", "fifo", "APB_PREFILL_POLICY='fifo' is not a prefill policy (expected concurrent or decode-first)")]
    [InlineData("APB_CONFIG", "/nonexistent/ops.hocon", "'/nonexistent/ops.hocon' (from APB_CONFIG) does not exist")]
    [InlineData("APB_HOST_KV_MEMORY", "3 gigs", "APB_HOST_KV_MEMORY='3 gigs' is not a size")]
    public void Bad_values_fail_with_the_variable_named(string name, string value, string expected)
    {
        var error = Assert.Throws<NodeConfigException>(() => Load((name, value)));
        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void File_overrides_baseline_and_environment_overrides_file()
    {
        var file = Path.GetTempFileName();
        try
        {
            File.WriteAllText(file, "akka.remote.dot-netty.tcp.port = 6000\napb.admin.port = 7000\nakka.cluster.split-brain-resolver.stable-after = 3s");
            var config = Load(("APB_CONFIG", file), ("CLUSTER_PORT", "6001"));
            Assert.Equal(6001, config.Settings.Port);
            Assert.Equal(7000, config.Settings.AdminPort);
            Assert.Equal(TimeSpan.FromSeconds(3), config.Hocon.GetTimeSpan("akka.cluster.split-brain-resolver.stable-after"));
            Assert.Equal(3, config.Sources.Count);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void Kv_budgets_come_from_the_environment_or_a_file_and_a_bad_one_is_named()
    {
        var config = Load(("APB_KV_MEMORY", "12GiB"), ("APB_HOST_KV_MEMORY", "64GiB"));
        Assert.Equal((12L << 30, 64L << 30), (config.Settings.KvMemory, config.Settings.HostKvMemory));
        Assert.Equal(0, Load().Settings.HostKvMemory); // none: the machine's memory
        var file = Path.GetTempFileName();
        try
        {
            File.WriteAllText(file, "apb.gpu-host.host-kv-memory = -5");
            var error = Assert.Throws<NodeConfigException>(() => Load(("APB_CONFIG", file)));
            Assert.Contains("apb.gpu-host.host-kv-memory = -5: must not be negative", error.Message);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void Unknown_role_in_a_file_is_refused_too()
    {
        var file = Path.GetTempFileName();
        try
        {
            File.WriteAllText(file, "akka.cluster.roles = [oracle]");
            var error = Assert.Throws<NodeConfigException>(() => Load(("APB_CONFIG", file)));
            Assert.Contains("akka.cluster.roles has unknown role 'oracle'", error.Message);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void Prefill_policy_is_concurrent_by_default_and_bound_from_the_environment_or_a_file()
    {
        Assert.Equal(PrefillPolicy.Concurrent, Load().Settings.PrefillPolicy);
        var fromEnv = Load(("APB_PREFILL_POLICY", "Decode-First"));
        Assert.Equal(PrefillPolicy.DecodeFirst, fromEnv.Settings.PrefillPolicy);
        var file = Path.GetTempFileName();
        try
        {
            File.WriteAllText(file, "apb.gpu-host.prefill-policy = decode-first");
            Assert.Equal(PrefillPolicy.DecodeFirst, Load(("APB_CONFIG", file)).Settings.PrefillPolicy);
            File.WriteAllText(file, "apb.gpu-host.prefill-policy = newest-first");
            var error = Assert.Throws<NodeConfigException>(() => Load(("APB_CONFIG", file)));
            Assert.Equal("apb.gpu-host.prefill-policy = 'newest-first': expected concurrent or decode-first", error.Message);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task Baseline_boots_an_actor_system_with_our_serializer_and_log_buffer()
    {
        var config = Load(("CLUSTER_PORT", "0"));
        var system = ActorSystem.Create("apb", config.Hocon);
        try
        {
            Assert.IsType<ApbSerializer>(system.Serialization.FindSerializerForType(typeof(Contracts.CancelQuery)));
            system.Log.Info("hello ring buffer");
            var buffer = LogRingBuffer.Get(system);
            var deadline = DateTime.UtcNow.AddSeconds(5);
            while (!buffer.Last(100).Any(l => l.Contains("hello ring buffer")) && DateTime.UtcNow < deadline)
                await Task.Delay(50, TestContext.Current.CancellationToken);
            Assert.Contains(buffer.Last(100), l => l.Contains("hello ring buffer"));
        }
        finally
        {
            await system.Terminate().WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
        }
    }

    [Fact]
    public void Ring_buffer_keeps_the_most_recent_lines_in_order()
    {
        var buffer = new LogRingBuffer(3);
        foreach (var i in Enumerable.Range(1, 5)) buffer.Add($"line {i}");
        Assert.Equal(["line 3", "line 4", "line 5"], buffer.Last(10));
        Assert.Equal(["line 5"], buffer.Last(1));
    }

    [Fact]
    public void Seeds_that_name_only_this_node_are_warned_about_in_the_banner()
    {
        var alone = Load(("CLUSTER_PORT", "4053"), ("CLUSTER_SEEDS", "127.0.0.1:4053"));
        Assert.Contains("CLUSTER_SEEDS names only this node", alone.Describe());
        var listed = Load(("CLUSTER_PORT", "4053"), ("CLUSTER_SEEDS", "127.0.0.1:4053,127.0.0.1:4054"));
        Assert.Null(listed.SeedWarning());
        Assert.Null(Load(("CLUSTER_PORT", "4054"), ("CLUSTER_SEEDS", "127.0.0.1:4053")).SeedWarning());
    }
}
