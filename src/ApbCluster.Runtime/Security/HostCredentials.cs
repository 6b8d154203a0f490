using ApbCluster.Contracts;

namespace ApbCluster.Runtime.Security;

/// <summary>
/// What a gpu-host tells the router about itself beyond its figures: its model fingerprint and, once the router
/// challenged it, the proof that it holds the join secret. Kept by the host actor; the nonce changes with the router.
/// </summary>
public sealed class HostCredentials(byte[]? secret, string modelFingerprint)
{
    private string _nonce = "";

    public string ModelFingerprint => modelFingerprint;

    /// <summary>The router's nonce to prove against from now on (a new router sends a new one).</summary>
    public void Challenged(string nonce) => _nonce = nonce;

    /// <summary><paramref name="r"/> with the fingerprint and, after a challenge, the proof (none without a secret).</summary>
    public RegisterHost Sign(RegisterHost r, Akka.Actor.Address selfAddress)
    {
        var withModel = r with { ModelFingerprint = modelFingerprint, JoinNonce = _nonce };
        return secret is null || _nonce.Length == 0
            ? withModel
            : withModel with { JoinProof = JoinProof.Compute(secret, withModel, JoinGate.ActorAddress(r.Host, selfAddress), _nonce) };
    }
}
