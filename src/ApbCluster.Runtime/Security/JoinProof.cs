using System.Security.Cryptography;
using System.Text;
using ApbCluster.Contracts;

namespace ApbCluster.Runtime.Security;

/// <summary>
/// A host's answer to the router's nonce: HMAC-SHA256 under the join secret over everything the router will act on
/// (the host id, the actor it sends queries to, the data endpoint peers push tensors to, the model fingerprint), so
/// a proof seen on the wire cannot vouch for another actor, endpoint or model, nor for the next router.
/// </summary>
public static class JoinProof
{
    public static string Compute(byte[] secret, RegisterHost r, string actorAddress, string nonce) =>
        Convert.ToBase64String(HMACSHA256.HashData(secret, Message(r, actorAddress, nonce)));

    /// <summary>True when <paramref name="r"/>'s proof was made with one of <paramref name="secrets"/> (compared in constant time).</summary>
    public static bool Verify(IReadOnlyList<byte[]> secrets, RegisterHost r, string actorAddress, string nonce)
    {
        Span<byte> given = stackalloc byte[HMACSHA256.HashSizeInBytes];
        if (!Convert.TryFromBase64String(r.JoinProof, given, out var n) || n != given.Length) return false;
        var message = Message(r, actorAddress, nonce);
        var ok = false;
        foreach (var secret in secrets)
            ok |= CryptographicOperations.FixedTimeEquals(given, HMACSHA256.HashData(secret, message));
        return ok;
    }

    /// <summary>Fields joined by a separator none of them may contain (a newline), with a version label.</summary>
    private static byte[] Message(RegisterHost r, string actorAddress, string nonce) =>
        Encoding.UTF8.GetBytes(string.Join('\n', "apb-join-v1", nonce, r.HostId, actorAddress, r.DataEndpoint, r.ModelFingerprint));
}
