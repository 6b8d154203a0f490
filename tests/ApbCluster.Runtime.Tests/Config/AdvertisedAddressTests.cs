using System.Net;
using ApbCluster.Runtime.Config;
using ApbCluster.Engine;

namespace ApbCluster.Runtime.Tests.Config;

/// <summary>
/// Containers bind every interface (CLUSTER_IP=0.0.0.0); peers must still be told an address they
/// can dial, never the wildcard. The compose smoke run (scripts/compose-smoke.sh) checks the same
/// with a plain `docker run`.
/// </summary>
public sealed class AdvertisedAddressTests
{
    private static NodeConfig Load(Func<string?>? discover, params (string Name, string Value)[] env) =>
        NodeConfig.Load(env.ToDictionary(e => e.Name, e => (string?)e.Value), discoverAddress: discover);

    [Theory]
    [InlineData("0.0.0.0")]
    [InlineData("::")]
    public void A_wildcard_bind_advertises_this_machines_address(string bind)
    {
        var s = Load(() => "172.18.0.5", ("CLUSTER_IP", bind), ("CLUSTER_PORT", "4053")).Settings;
        Assert.Equal("akka.tcp://apb@172.18.0.5:4053", s.SelfAddress);
        Assert.Equal(bind, s.Hostname); // still binds every interface
    }

    [Fact]
    public void An_explicit_public_hostname_or_a_specific_bind_is_left_alone()
    {
        string? Fail() => throw new InvalidOperationException("discovery must not run");
        Assert.Equal("akka.tcp://apb@router:4053", Load(Fail, ("CLUSTER_IP", "0.0.0.0"), ("CLUSTER_PUBLIC_HOSTNAME", "router")).Settings.SelfAddress);
        Assert.Equal("akka.tcp://apb@10.0.0.7:4053", Load(Fail, ("CLUSTER_IP", "10.0.0.7")).Settings.SelfAddress);
    }

    [Fact]
    public void No_address_to_advertise_names_the_variable_to_set()
    {
        var error = Assert.Throws<NodeConfigException>(() => Load(() => null, ("CLUSTER_IP", "0.0.0.0")));
        Assert.Contains("CLUSTER_PUBLIC_HOSTNAME", error.Message);
        Assert.Contains("CLUSTER_IP='0.0.0.0'", error.Message);
    }

    [Fact]
    public void This_machine_has_a_non_loopback_address_to_advertise()
    {
        var host = Load(null, ("CLUSTER_IP", "0.0.0.0")).Settings.PublicHostname;
        Assert.True(IPAddress.TryParse(host, out var ip), host);
        Assert.False(IPAddress.IsLoopback(ip) || AdvertisedAddress.IsWildcard(host), host);
    }

    [Fact]
    public void A_missing_model_folder_fails_at_boot_with_the_folder_named()
    {
        var error = Assert.Throws<DirectoryNotFoundException>(() => ModelSpec.Parse(null, "/models/not-mounted"));
        Assert.Contains("'/models/not-mounted'", error.Message);
        Assert.Contains("APB_MODEL_DIR", error.Message);
    }
}
