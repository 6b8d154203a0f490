namespace ApbCluster.Runtime.Config;

public static class NodeRoles
{
    public const string Router = "router";
    public const string GpuHost = "gpu-host";

    public static readonly IReadOnlyList<string> Known = [Router, GpuHost];
}
