using System.Text;
using ApbCluster.Runtime.Config;
using HoconConfig = Akka.Configuration.Config;

namespace ApbCluster.Runtime.Security;

/// <summary>
/// The cluster's join secret (apb.cluster.*; docs/security.md). A gpu-host proves it when it registers, and the
/// router plans no host that cannot. Routers also accept the previous secret, so a rotation needs no flag day.
/// </summary>
/// <param name="Secret">This node's secret: what its hosts prove and what its router checks first. Null: none.</param>
/// <param name="Previous">A router also accepts proofs made with this one (rotation); null: none.</param>
/// <param name="AllowInsecure">apb.cluster.allow-insecure-join: without a secret, run anyway and register every host.</param>
public sealed record JoinSettings(byte[]? Secret, byte[]? Previous, bool AllowInsecure)
{
    /// <summary>Shorter secrets are guessable offline from one proof seen on the wire.</summary>
    public const int MinimumLength = 16;

    public static readonly JoinSettings Insecure = new(null, null, AllowInsecure: true);

    /// <summary>The secrets a router accepts, current first.</summary>
    public IReadOnlyList<byte[]> Accepted => new[] { Secret, Previous }.OfType<byte[]>().ToList();

    public static JoinSettings Read(HoconConfig c)
    {
        var inline = c.GetString("apb.cluster.join-secret", "");
        var file = c.GetString("apb.cluster.join-secret-file", "");
        if (inline.Length > 0 && file.Length > 0)
            throw new NodeConfigException("both apb.cluster.join-secret (APB_JOIN_SECRET) and apb.cluster.join-secret-file (APB_JOIN_SECRET_FILE) are set: set one");
        var secret = file.Length > 0 ? FromFile(file) : inline.Length > 0 ? Checked(inline, "apb.cluster.join-secret (APB_JOIN_SECRET)") : null;
        var previous = c.GetString("apb.cluster.previous-join-secret", "") is { Length: > 0 } p
            ? Checked(p, "apb.cluster.previous-join-secret (APB_PREVIOUS_JOIN_SECRET)")
            : null;
        if (previous is not null && secret is null)
            throw new NodeConfigException("apb.cluster.previous-join-secret (APB_PREVIOUS_JOIN_SECRET) is set without a current apb.cluster.join-secret");
        return new JoinSettings(secret, previous, c.GetBoolean("apb.cluster.allow-insecure-join", false));
    }

    /// <summary>A node with no secret runs only when told so: otherwise any process that reaches it could join as a host.</summary>
    public void RequireSecretOrInsecure()
    {
        if (Secret is null && !AllowInsecure)
            throw new NodeConfigException("no join secret: set APB_JOIN_SECRET (apb.cluster.join-secret) or APB_JOIN_SECRET_FILE to the same secret " +
                                          "on every node, or APB_ALLOW_INSECURE_JOIN=on (apb.cluster.allow-insecure-join) for loopback development only");
    }

    private static byte[] FromFile(string path)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new NodeConfigException($"apb.cluster.join-secret-file (APB_JOIN_SECRET_FILE) '{path}' cannot be read: {e.Message}");
        }
        return Checked(text.TrimEnd('\r', '\n'), $"the join secret in '{path}' (apb.cluster.join-secret-file)");
    }

    private static byte[] Checked(string secret, string where)
    {
        var bytes = Encoding.UTF8.GetBytes(secret);
        return bytes.Length >= MinimumLength
            ? bytes
            : throw new NodeConfigException($"{where} is {bytes.Length} bytes; use at least {MinimumLength} (e.g. the output of `openssl rand -hex 32`)");
    }
}
