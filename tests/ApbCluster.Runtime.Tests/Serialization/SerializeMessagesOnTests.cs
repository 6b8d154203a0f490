using Akka.Actor;
using Akka.Configuration;
using Akka.TestKit.Xunit;
using ApbCluster.Contracts.Serialization;

namespace ApbCluster.Runtime.Tests.Serialization;

/// <summary>With serialize-messages on, every local Tell goes through the serializer.</summary>
public sealed class SerializeMessagesOnTests() : TestKit(
    ConfigurationFactory.ParseString("akka.actor.serialize-messages = on")
        .WithFallback(ConfigurationFactory.ParseString(SerializerHocon.Text)))
{
    [Fact]
    public void Every_contract_message_survives_a_serialized_tell()
    {
        foreach (var message in SampleMessages.All(TestActor))
        {
            TestActor.Tell(message);
            var received = ExpectMsg<object>(TimeSpan.FromSeconds(3));
            StructuralEquality.AssertSame(message, received);
            if (!ReferenceEquals(message, Contracts.GetClusterStatus.Instance) && !ReferenceEquals(message, Contracts.ListQueries.Instance))
                Assert.NotSame(message, received);
        }
    }
}
