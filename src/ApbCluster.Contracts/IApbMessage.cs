namespace ApbCluster.Contracts;

/// <summary>
/// Marker for every message of the ApbCluster actor API. The HOCON binds this one interface
/// to <see cref="Serialization.ApbSerializer"/>, so a new contract type cannot silently fall
/// back to Newtonsoft JSON (the serializer test fails for any type it does not handle).
/// </summary>
public interface IApbMessage;

/// <summary>Messages that belong to one query; the router and callers route by QueryId.</summary>
public interface IQueryMessage : IApbMessage
{
    string QueryId { get; }
}
