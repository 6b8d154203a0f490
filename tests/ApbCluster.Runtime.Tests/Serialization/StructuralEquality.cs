using System.Text.Json;
using System.Text.Json.Serialization;
using Akka.Actor;

namespace ApbCluster.Runtime.Tests.Serialization;

/// <summary>
/// Records with list fields compare lists by reference, so tests compare a JSON rendering
/// instead (actor refs rendered as their path).
/// </summary>
public static class StructuralEquality
{
    private static readonly JsonSerializerOptions Options = new() { Converters = { new ActorRefAsPath() } };

    public static string Render(object message) => JsonSerializer.Serialize(message, message.GetType(), Options);

    public static void AssertSame(object expected, object actual)
    {
        Assert.Equal(expected.GetType(), actual.GetType());
        Assert.Equal(Render(expected), Render(actual));
    }

    private sealed class ActorRefAsPath : JsonConverter<IActorRef>
    {
        public override IActorRef Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
            throw new NotSupportedException();

        public override void Write(Utf8JsonWriter writer, IActorRef value, JsonSerializerOptions options) =>
            writer.WriteStringValue(value.Path.ToStringWithoutAddress());

        public override bool CanConvert(Type typeToConvert) => typeof(IActorRef).IsAssignableFrom(typeToConvert);
    }
}
