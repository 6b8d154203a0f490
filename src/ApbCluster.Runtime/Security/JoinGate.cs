using System.Security.Cryptography;
using Akka.Actor;
using ApbCluster.Contracts;

namespace ApbCluster.Runtime.Security;

/// <summary>
/// The router's check before it registers (and so ever plans) a host: the host proves the join secret over this
/// router's nonce, then its model fingerprint must be the router's. The nonce is new for every router incarnation.
/// </summary>
/// <param name="modelName">The router's model name, for refusal messages.</param>
/// <param name="modelFingerprint">The router's model fingerprint; null: the router has no model, any host's is accepted.</param>
public sealed class JoinGate(JoinSettings settings, string modelName, string? modelFingerprint)
{
    /// <summary>Refusals are logged once per host actor; a stranger that keeps registering must not flood the log.</summary>
    private const int LoggedLimit = 1024;

    private readonly HashSet<IActorRef> _logged = [];

    public string Nonce { get; } = Convert.ToHexString(RandomNumberGenerator.GetBytes(16)).ToLowerInvariant();

    /// <summary>What to answer instead of registering: a challenge, a refusal, or null when the host may register.</summary>
    public IApbMessage? Check(RegisterHost r, Address address)
    {
        var secrets = settings.Accepted;
        if (secrets.Count > 0)
        {
            if (r.JoinNonce != Nonce) return new JoinChallenge(r.HostId, Nonce); // first contact, or a proof for an earlier router
            if (r.JoinProof.Length == 0)
                return new HostRefused(r.HostId, JoinRefusal.MissingProof,
                    $"host {r.HostId} ({address}) has no join secret, and this router requires one: set APB_JOIN_SECRET on every node");
            if (!JoinProof.Verify(secrets, r, ActorAddress(r.Host, address), Nonce))
                return new HostRefused(r.HostId, JoinRefusal.WrongSecret,
                    $"host {r.HostId} ({address}) proved another join secret than the router's: set the same APB_JOIN_SECRET on every node");
        }
        if (modelFingerprint is not null && r.ModelFingerprint != modelFingerprint)
            return new HostRefused(r.HostId, JoinRefusal.ModelMismatch,
                $"host {r.HostId} ({address}) serves model '{Shown(r.Model)}' (fingerprint {Shown(r.ModelFingerprint)}) but the router serves " +
                $"'{modelName}' (fingerprint {modelFingerprint}): give every node the same APB_MODEL / APB_MODEL_DIR");
        return null;
    }

    /// <summary>True the first time a refusal of <paramref name="host"/> should be logged.</summary>
    public bool ShouldLog(IActorRef host) => _logged.Count < LoggedLimit && _logged.Add(host);

    /// <summary>The host actor's full address with its incarnation, as both sides see it.</summary>
    public static string ActorAddress(IActorRef host, Address address) => $"{host.Path.ToStringWithAddress(address)}#{host.Path.Uid}";

    private static string Shown(string value) => value.Length == 0 ? "none" : value;
}
