namespace ApbCluster.Contracts.Serialization;

/// <summary>
/// The serializer binding as HOCON, for outside services (ClusterClient users) that don't
/// load our node baseline. hocon/apb-baseline.hocon carries the same block.
/// </summary>
public static class SerializerHocon
{
    public const string Text = """
        akka.actor {
          serializers.apb = "ApbCluster.Contracts.Serialization.ApbSerializer, ApbCluster.Contracts"
          serialization-bindings {
            "ApbCluster.Contracts.IApbMessage, ApbCluster.Contracts" = apb
          }
          serialization-identifiers {
            "ApbCluster.Contracts.Serialization.ApbSerializer, ApbCluster.Contracts" = 16720
          }
        }
        """;

    /// <summary>Every contract type the serializer handles (tests check each is bound and round-trips).</summary>
    public static IReadOnlyList<Type> ContractTypes => MessageCodecs.Types.ToArray();
}
