using Akka.Actor;
using System.Runtime.Serialization;
using System.Text;
using Akka.Event;
using Akka.Serialization;

namespace ApbCluster.Contracts.Serialization;

/// <summary>
/// Compact binary serializer for every <see cref="IApbMessage"/>. Each payload starts with a
/// format version byte; manifests are short and stable ("SQ2") so renaming a CLR type never
/// breaks a rolling upgrade. Bound in HOCON through <see cref="SerializerHocon"/>.
/// </summary>
public sealed class ApbSerializer : SerializerWithStringManifest
{
    /// <summary>0x4150 = "AP"; ids up to 100 are reserved by Akka.</summary>
    public const int Id = 0x4150;

    /// <summary>Bump when a payload layout changes; readers reject versions they don't know.</summary>
    public const byte FormatVersion = 1;

    public ApbSerializer(ExtendedActorSystem system) : base(system)
    {
    }

    public override int Identifier => Id;

    /// <summary>The stable wire manifest of a contract type ("SQ2" for <see cref="SubmitQuery"/>).</summary>
    public static string ManifestOf<T>() where T : IApbMessage => MessageCodecs.ByType[typeof(T)].Manifest;

    public override string Manifest(object o) =>
        MessageCodecs.ByType.TryGetValue(o.GetType(), out var codec)
            ? codec.Manifest
            : throw new ArgumentException($"ApbSerializer cannot serialize {o.GetType()}; add a codec in MessageCodecs");

    public override byte[] ToBinary(object obj)
    {
        var codec = MessageCodecs.ByType.TryGetValue(obj.GetType(), out var c)
            ? c
            : throw new ArgumentException($"ApbSerializer cannot serialize {obj.GetType()}; add a codec in MessageCodecs");
        using var stream = new MemoryStream();
        using (var w = new BinaryWriter(stream, BinaryFormat.Utf8, leaveOpen: true))
        {
            w.Write(FormatVersion);
            codec.Write(w, obj, new ActorRefCodec(system));
        }
        return stream.ToArray();
    }

    /// <summary>
    /// Decodes a payload. Bytes it cannot decode become a <see cref="MalformedMessage"/> (logged here as an error)
    /// rather than an exception: remoting would drop the message, and the sender would wait for nothing.
    /// </summary>
    public override object FromBinary(byte[] bytes, string manifest)
    {
        try
        {
            return Decode(bytes, manifest);
        }
        catch (SerializationException e)
        {
            system.Log.Error("{0}", e.Message);
            return new MalformedMessage(manifest, bytes.Length, e.Message, QueryIdOf(bytes, manifest));
        }
    }

    /// <summary>Decodes a payload, or throws a <see cref="SerializationException"/> that names the manifest and the fault.</summary>
    public object Decode(byte[] bytes, string manifest)
    {
        if (!MessageCodecs.ByManifest.TryGetValue(manifest, out var codec))
            throw new SerializationException($"ApbSerializer: unknown manifest '{manifest}'");
        if (bytes.Length == 0) throw new SerializationException($"ApbSerializer: malformed '{manifest}' payload: it is empty");
        using var r = new BinaryReader(new MemoryStream(bytes, writable: false), BinaryFormat.Utf8);
        var version = r.ReadByte();
        if (version != FormatVersion)
            throw new SerializationException($"ApbSerializer: manifest '{manifest}' has format version {version}, this node reads {FormatVersion}");
        try
        {
            return codec.Read(r, new ActorRefCodec(system));
        }
        catch (Exception e) when (e is EndOfStreamException or InvalidDataException or FormatException or OverflowException or ArgumentException or DecoderFallbackException)
        {
            throw new SerializationException($"ApbSerializer: malformed '{manifest}' payload ({bytes.Length} bytes): {e.Message}", e);
        }
    }

    /// <summary>Every query message writes its id first: read it back from a damaged payload when that much is intact.</summary>
    private static string QueryIdOf(byte[] bytes, string manifest)
    {
        if (bytes.Length < 2 || !MessageCodecs.ByManifest.TryGetValue(manifest, out var codec) || !typeof(IQueryMessage).IsAssignableFrom(codec.Type))
            return "";
        try
        {
            using var r = new BinaryReader(new MemoryStream(bytes, 1, bytes.Length - 1, writable: false), BinaryFormat.Utf8);
            var id = r.ReadString();
            return id.Length <= 256 && !id.Any(char.IsControl) ? id : "";
        }
        catch (Exception e) when (e is EndOfStreamException or FormatException or DecoderFallbackException or IOException)
        {
            return "";
        }
    }
}

/// <summary>Actor refs travel as their full serialized path and are resolved on arrival.</summary>
internal readonly struct ActorRefCodec(ExtendedActorSystem system)
{
    public void Write(BinaryWriter w, IActorRef actorRef) => w.Write(Akka.Serialization.Serialization.SerializedActorPath(actorRef));

    public IActorRef Read(BinaryReader r) => system.Provider.ResolveActorRef(r.ReadString());
}
