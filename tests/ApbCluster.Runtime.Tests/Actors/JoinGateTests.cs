using System.Text;
using Akka.Actor;
using Akka.TestKit.Xunit;
using ApbCluster.Contracts;
using ApbCluster.Runtime.Actors;
using ApbCluster.Runtime.Security;

namespace ApbCluster.Runtime.Tests.Actors;

/// <summary>
/// The router's registration check, on a real QueryRouter with messages serialized: a host is challenged, registers
/// with a proof made with the join secret (or the previous one), and is refused, never listed, with a wrong secret,
/// no proof, a proof for another data endpoint, or another model's fingerprint.
/// </summary>
public sealed class JoinGateTests() : TestKit(ClusterTestConfig.Hocon)
{
    private static readonly byte[] Secret = Encoding.UTF8.GetBytes("the-cluster-join-secret");
    private static readonly byte[] Previous = Encoding.UTF8.GetBytes("last-months-join-secret");
    private const string Fingerprint = "sha256:00112233aabbccdd";

    private IActorRef Router() => Sys.ActorOf(QueryRouter.Props(new RouterSettings
    {
        Join = new JoinSettings(Secret, Previous, AllowInsecure: false),
        ModelName = "random:tiny:7",
        ModelFingerprint = Fingerprint,
    }));

    private static RegisterHost Registration(IActorRef host, string id = "h0") =>
        new(id, host, "cpu", 1, 2, "random:tiny:7", HostState.Ready, 0, "127.0.0.1:5000");

    private Address SelfAddress => ((ExtendedActorSystem)Sys).Provider.DefaultAddress;

    /// <summary>Registers as a host would: first contact, the challenge, then the signed registration; returns the answer.</summary>
    private object Register(IActorRef router, HostCredentials credentials, Func<RegisterHost, RegisterHost>? tamper = null)
    {
        var host = CreateTestProbe();
        router.Tell(credentials.Sign(Registration(host.Ref), SelfAddress), host.Ref);
        var challenge = host.ExpectMsg<JoinChallenge>();
        Assert.Equal(("h0", 32), (challenge.HostId, challenge.Nonce.Length));
        credentials.Challenged(challenge.Nonce);
        var signed = credentials.Sign(Registration(host.Ref), SelfAddress);
        router.Tell(tamper is null ? signed : tamper(signed), host.Ref);
        return host.ReceiveOne(TimeSpan.FromSeconds(3))!;
    }

    private List<HostStatus> Hosts(IActorRef router)
    {
        router.Tell(GetClusterStatus.Instance);
        return ExpectMsg<ClusterStatus>().Hosts.ToList();
    }

    [Fact]
    public void A_host_with_the_secret_and_the_model_registers_after_one_challenge()
    {
        var router = Router();
        Assert.IsType<HostRegistered>(Register(router, new HostCredentials(Secret, Fingerprint)));
        Assert.Equal("h0", Assert.Single(Hosts(router)).HostId);
    }

    [Fact]
    public void The_previous_secret_is_accepted_during_a_rotation()
    {
        var router = Router();
        Assert.IsType<HostRegistered>(Register(router, new HostCredentials(Previous, Fingerprint)));
    }

    [Fact]
    public void Wrong_secret_no_secret_and_a_proof_for_another_endpoint_are_refused_and_never_listed()
    {
        var router = Router();
        var wrong = Assert.IsType<HostRefused>(Register(router, new HostCredentials(Encoding.UTF8.GetBytes("some-other-join-secret"), Fingerprint)));
        Assert.Equal(JoinRefusal.WrongSecret, wrong.Reason);
        Assert.Contains("proved another join secret than the router's", wrong.Message);

        var none = Assert.IsType<HostRefused>(Register(router, new HostCredentials(null, Fingerprint)));
        Assert.Equal(JoinRefusal.MissingProof, none.Reason);

        // A proof seen on the wire does not vouch for another data endpoint (where peers would send tensors).
        var moved = Assert.IsType<HostRefused>(Register(router, new HostCredentials(Secret, Fingerprint), r => r with { DataEndpoint = "10.9.9.9:5000" }));
        Assert.Equal(JoinRefusal.WrongSecret, moved.Reason);
        Assert.Empty(Hosts(router));
    }

    [Fact]
    public void Another_model_is_refused_naming_both_models_and_fingerprints()
    {
        var router = Router();
        var refused = Assert.IsType<HostRefused>(Register(router, new HostCredentials(Secret, "sha256:ffffffffffffffff")));
        Assert.Equal(JoinRefusal.ModelMismatch, refused.Reason);
        Assert.Contains("serves model 'random:tiny:7' (fingerprint sha256:ffffffffffffffff) but the router serves 'random:tiny:7' (fingerprint sha256:00112233aabbccdd)", refused.Message);
        Assert.Empty(Hosts(router));
    }

    [Fact]
    public void An_insecure_router_registers_without_a_challenge_but_still_checks_the_model()
    {
        var router = Sys.ActorOf(QueryRouter.Props(new RouterSettings { ModelName = "m", ModelFingerprint = Fingerprint }));
        var host = CreateTestProbe();
        router.Tell(new HostCredentials(null, Fingerprint).Sign(Registration(host.Ref), SelfAddress), host.Ref);
        host.ExpectMsg<HostRegistered>();
        router.Tell(new HostCredentials(null, "").Sign(Registration(host.Ref, "h1"), SelfAddress), host.Ref);
        Assert.Contains("serves model 'random:tiny:7' (fingerprint none)", host.ExpectMsg<HostRefused>().Message);
    }
}
