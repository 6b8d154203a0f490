using System.Text;

namespace ApbCluster.Runtime.Config;

/// <summary>Who may join: the join secret (see <see cref="Security.JoinSettings"/>) and the hosts a router expects.</summary>
public static partial class EnvironmentOverlay
{
    // A property for the same reason as OpsVariables.
    public static IReadOnlyList<string> SecurityVariables =>
        ["APB_JOIN_SECRET", "APB_JOIN_SECRET_FILE", "APB_PREVIOUS_JOIN_SECRET", "APB_ALLOW_INSECURE_JOIN", "APB_EXPECTED_HOSTS"];

    private static void AppendSecurity(IReadOnlyDictionary<string, string?> env, StringBuilder hocon)
    {
        if (Get(env, "APB_JOIN_SECRET") is { } secret)
            hocon.AppendLine($"apb.cluster.join-secret = {Quote(secret)}");
        if (Get(env, "APB_JOIN_SECRET_FILE") is { } file)
            hocon.AppendLine($"apb.cluster.join-secret-file = {Quote(file)}");
        if (Get(env, "APB_PREVIOUS_JOIN_SECRET") is { } previous)
            hocon.AppendLine($"apb.cluster.previous-join-secret = {Quote(previous)}");
        if (Get(env, "APB_ALLOW_INSECURE_JOIN") is { } insecure)
            hocon.AppendLine($"apb.cluster.allow-insecure-join = {ParseSwitch("APB_ALLOW_INSECURE_JOIN", insecure)}");
        if (Get(env, "APB_EXPECTED_HOSTS") is { } expected)
            hocon.AppendLine($"apb.router.expected-hosts = {ParseCount("APB_EXPECTED_HOSTS", expected, max: 4096)}");
    }

    private static string ParseSwitch(string name, string value) => value.ToLowerInvariant() switch
    {
        "on" or "true" or "yes" or "1" => "on",
        "off" or "false" or "no" or "0" => "off",
        _ => throw new NodeConfigException($"{name}='{value}' must be on or off"),
    };
}
