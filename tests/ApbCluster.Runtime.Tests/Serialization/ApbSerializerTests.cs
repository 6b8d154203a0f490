using Akka.Actor;
using Akka.Configuration;
using Akka.TestKit.Xunit;
using ApbCluster.Contracts;
using ApbCluster.Contracts.Serialization;

namespace ApbCluster.Runtime.Tests.Serialization;

public sealed class ApbSerializerTests() : TestKit(ConfigurationFactory.ParseString(SerializerHocon.Text))
{
    [Fact]
    public void Every_sample_round_trips_through_ApbSerializer()
    {
        var serialization = Sys.Serialization;
        foreach (var message in SampleMessages.All(TestActor))
        {
            var serializer = serialization.FindSerializerFor(message);
            Assert.IsType<ApbSerializer>(serializer);
            var manifest = Akka.Serialization.Serialization.ManifestFor(serializer, message);
            var bytes = serializer.ToBinary(message);
            Assert.Equal(ApbSerializer.FormatVersion, bytes[0]);
            var back = serialization.Deserialize(bytes, serializer.Identifier, manifest);
            StructuralEquality.AssertSame(message, back);
        }
    }

    [Fact]
    public void Every_contract_type_has_a_sample_and_a_binding()
    {
        var contractTypes = typeof(IApbMessage).Assembly.GetTypes()
            .Where(t => t is { IsClass: true, IsAbstract: false } && typeof(IApbMessage).IsAssignableFrom(t))
            .ToHashSet();
        Assert.Equal(contractTypes.OrderBy(t => t.Name), SerializerHocon.ContractTypes.OrderBy(t => t.Name));
        var sampled = SampleMessages.All(TestActor).Select(m => m.GetType()).ToHashSet();
        Assert.Superset(contractTypes, sampled);
        foreach (var type in contractTypes)
            Assert.IsType<ApbSerializer>(Sys.Serialization.FindSerializerForType(type));
    }

    [Fact]
    public void Manifests_are_short_and_unique()
    {
        var serializer = (ApbSerializer)Sys.Serialization.FindSerializerForType(typeof(CancelQuery));
        var manifests = SampleMessages.All(TestActor).Select(serializer.Manifest).Distinct().ToList();
        Assert.All(manifests, m => Assert.True(m.Length <= 3, m));
        Assert.Equal(SerializerHocon.ContractTypes.Count, manifests.Count);
    }

    [Fact]
    public void Unknown_version_and_manifest_are_refused_clearly()
    {
        var serializer = (ApbSerializer)Sys.Serialization.FindSerializerForType(typeof(CancelQuery));
        var bytes = serializer.ToBinary(new CancelQuery("q"));
        bytes[0] = 99;
        var versionError = Assert.ThrowsAny<Exception>(() => serializer.Decode(bytes, "CQ1"));
        Assert.Contains("format version 99", versionError.Message);
        var manifestError = Assert.ThrowsAny<Exception>(() => serializer.Decode(bytes, "ZZ9"));
        Assert.Contains("unknown manifest", manifestError.Message);
    }

    [Fact]
    public void Truncated_payload_fails_instead_of_allocating_garbage()
    {
        var serializer = (ApbSerializer)Sys.Serialization.FindSerializerForType(typeof(TokenChunk));
        var bytes = serializer.ToBinary(new TokenChunk("q", 0, Enumerable.Range(0, 1000).ToArray(), "x"));
        Assert.ThrowsAny<Exception>(() => serializer.Decode(bytes[..20], "TC1"));
    }

    [Fact]
    public void Undecodable_bytes_arrive_as_MalformedMessage_with_the_reason_and_the_readable_query_id()
    {
        var serializer = (ApbSerializer)Sys.Serialization.FindSerializerForType(typeof(SubmitQuery));
        var query = new SubmitQuery("q-77", QueryContext.FromText(new string('x', 200)), "why?", GenerationOptions.Greedy(3), AttentionMode.Apb, null);
        var bytes = serializer.ToBinary(query);

        var sq = ApbSerializer.ManifestOf<SubmitQuery>();
        var truncated = Assert.IsType<MalformedMessage>(serializer.FromBinary(bytes[..40], sq));
        Assert.Equal((sq, 40, "q-77"), (truncated.Manifest, truncated.Length, truncated.QueryId));
        Assert.Contains($"malformed '{sq}' payload (40 bytes)", truncated.Reason);

        var version = Assert.IsType<MalformedMessage>(serializer.FromBinary([7, .. bytes[1..]], sq));
        Assert.Contains("format version 7", version.Reason);
        Assert.Equal("q-77", version.QueryId);

        var unknown = Assert.IsType<MalformedMessage>(serializer.FromBinary(bytes, "ZZ9"));
        Assert.Equal(("ZZ9", "", true), (unknown.Manifest, unknown.QueryId, unknown.Reason.Contains("unknown manifest 'ZZ9'")));

        var empty = Assert.IsType<MalformedMessage>(serializer.FromBinary([], sq));
        Assert.Equal(("", true), (empty.QueryId, empty.Reason.Contains("it is empty")));

        // Any query message gives back its id when it is intact (version byte, length 3, "q-1": 5 bytes) ...
        var failed = serializer.ToBinary(new QueryFailed("q-1", "x", null));
        Assert.Equal("q-1", Assert.IsType<MalformedMessage>(serializer.FromBinary(failed[..5], "QF1")).QueryId);
        Assert.Equal("", Assert.IsType<MalformedMessage>(serializer.FromBinary(failed[..4], "QF1")).QueryId);
        // ... a non-query manifest never lends its first string as one.
        var registered = Assert.IsType<MalformedMessage>(serializer.FromBinary([1, 3, (byte)'a', (byte)'b'], "RH4"));
        Assert.Equal("", registered.QueryId);
    }

    [Fact]
    public void Token_ids_are_stored_compactly()
    {
        var serializer = (ApbSerializer)Sys.Serialization.FindSerializerForType(typeof(TokenChunk));
        var bytes = serializer.ToBinary(new TokenChunk("q", 0, Enumerable.Range(0, 1000).ToArray(), ""));
        Assert.True(bytes.Length < 2200, $"{bytes.Length} bytes for 1000 small token ids");
    }
}
