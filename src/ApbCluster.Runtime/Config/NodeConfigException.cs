namespace ApbCluster.Runtime.Config;

/// <summary>A bad configuration value; the message names the variable or key and the value.</summary>
public sealed class NodeConfigException(string message) : Exception(message);
