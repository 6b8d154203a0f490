namespace ApbCluster.Parallel.Plan;

/// <summary>A plan parameter is out of range; the message names the parameter, its value and the limit.</summary>
public sealed class PlanException(string parameter, string message) : ArgumentException(message, parameter)
{
    public string Parameter { get; } = parameter;
}
