using System.Collections.Frozen;

namespace ApbCluster.Contracts.Serialization;

/// <summary>One wire format: a stable manifest plus a writer and a reader.</summary>
internal sealed record MessageCodec(
    Type Type,
    string Manifest,
    Action<BinaryWriter, object, ActorRefCodec> Write,
    Func<BinaryReader, ActorRefCodec, object> Read);

/// <summary>
/// The table of every contract type. Manifests are part of the wire protocol: never reuse
/// or change one; add "XX2" for an incompatible new shape.
/// </summary>
internal static class MessageCodecs
{
    private static readonly MessageCodec[] All =
    [
        // SQ1 (without the split and the prompt echo), SQ2 (without the prefill attention), SQ3 (without the KV store)
        // and SQ4 (the compressor by name) are retired; never reuse them.
        Codec<SubmitQuery>("SQ5", (w, m, _) =>
        {
            w.Write(m.QueryId);
            w.WriteNullable(m.Context.Text);
            w.WriteNullableInts(m.Context.TokenIds);
            w.Write(m.Question);
            WriteGeneration(w, m.Generation);
            w.Write((byte)m.Mode);
            w.Write(m.Apb is not null);
            if (m.Apb is { } apb)
            {
                w.Write(apb.AnchorLength);
                w.Write(apb.PassingLength);
                w.Write((byte)apb.Compressor);
            }
            w.Write((byte)m.Split);
            w.Write(m.EchoPrompt);
            WritePrefillAttention(w, m.PrefillAttention);
            WriteKvStore(w, m.KvStore);
        }, (r, _) => new SubmitQuery(
            r.ReadString(),
            new QueryContext(r.ReadNullableString(), r.ReadNullableInts()),
            r.ReadString(),
            ReadGeneration(r),
            // Read as is (not ReadEnum): the router validates the mode and answers QueryFailed naming the
            // value; rejecting it here would drop the query and leave the caller waiting for its idle timeout.
            (AttentionMode)r.ReadByte(),
            // The compressor too is read as is, for the same reason.
            r.ReadBoolean() ? new ApbOptions(r.ReadInt32(), r.ReadInt32(), (CompressorKind)r.ReadByte()) : null,
            (BlockSplitMode)r.ReadByte(),
            r.ReadBoolean(),
            ReadPrefillAttention(r),
            ReadKvStore(r))),

        // QA1 (hosts, blocks, l_a, l_p only) and QA2 (the compressor by name) are retired; never reuse them.
        Codec<QueryAccepted>("QA3", (w, m, _) =>
        {
            w.Write(m.QueryId);
            w.WriteStrings(m.Plan.HostsInRingOrder);
            w.WriteInts(m.Plan.BlockLengths);
            w.Write(m.Plan.AnchorLength);
            w.Write(m.Plan.PassingLength);
            w.Write((byte)m.Plan.Mode);
            w.Write(m.Plan.DocumentTokens);
            w.Write(m.Plan.QuestionTokens);
            w.Write((byte)m.Plan.Split);
            w.WriteNullable(m.Plan.Compressor is { } c ? (byte)c : (long?)null);
        }, (r, _) => new QueryAccepted(
            r.ReadString(),
            new QueryPlanSummary(r.ReadStrings(), r.ReadInts(), r.ReadInt32(), r.ReadInt32(), ReadEnum<AttentionMode>(r), r.ReadInt32(),
                r.ReadInt32(), ReadEnum<BlockSplitMode>(r), ReadNullableEnum<CompressorKind>(r)))),

        Codec<PrefillProgress>("PP1", (w, m, _) =>
        {
            w.Write(m.QueryId);
            w.Write(m.Host);
            w.Write(m.Layer);
            w.Write(m.Layers);
        }, (r, _) => new PrefillProgress(r.ReadString(), r.ReadString(), r.ReadInt32(), r.ReadInt32())),

        Codec<TokenChunk>("TC1", (w, m, _) =>
        {
            w.Write(m.QueryId);
            w.Write(m.Index);
            w.WriteInts(m.TokenIds);
            w.Write(m.Text);
        }, (r, _) => new TokenChunk(r.ReadString(), r.ReadInt32(), r.ReadInts(), r.ReadString())),

        // QC1 (without token ids) and QC2 (without the router clock) are retired; never reuse them.
        Codec<QueryCompleted>("QC3", (w, m, _) =>
        {
            w.Write(m.QueryId);
            w.Write(m.Answer);
            w.Write((byte)m.FinishReason);
            var t = m.Timings;
            w.Write(t.QueueMs);
            w.Write(t.PlanMs);
            w.Write(t.PrefillMs);
            w.Write(t.TimeToFirstTokenMs);
            w.Write(t.DecodeMs);
            w.Write(t.TotalMs);
            w.Write(m.PromptTokens);
            w.Write(m.GeneratedTokens);
            w.WriteInts(m.TokenIds ?? []);
            w.WriteInts(m.PromptTokenIds ?? []);
            w.Write(m.Clock is not null);
            if (m.Clock is { } c)
            {
                w.Write(c.SubmittedMs);
                w.Write(c.DispatchedMs);
                w.Write(c.StartedMs);
                w.Write(c.FinishedMs);
            }
        }, (r, _) => new QueryCompleted(
            r.ReadString(),
            r.ReadString(),
            ReadEnum<FinishReason>(r),
            new PhaseTimings(r.ReadDouble(), r.ReadDouble(), r.ReadDouble(), r.ReadDouble(), r.ReadDouble(), r.ReadDouble()),
            r.ReadInt32(),
            r.ReadInt32(),
            r.ReadInts(),
            r.ReadInts(),
            r.ReadBoolean() ? new RouterClock(r.ReadDouble(), r.ReadDouble(), r.ReadDouble(), r.ReadDouble()) : null)),

        Codec<QueryFailed>("QF1", (w, m, _) =>
        {
            w.Write(m.QueryId);
            w.Write(m.Reason);
            w.WriteNullable(m.FailingHost);
        }, (r, _) => new QueryFailed(r.ReadString(), r.ReadString(), r.ReadNullableString())),

        Codec<MalformedMessage>("MM1", (w, m, _) =>
        {
            w.Write(m.Manifest);
            w.Write(m.Length);
            w.Write(m.Reason);
            w.Write(m.QueryId);
        }, (r, _) => new MalformedMessage(r.ReadString(), r.ReadInt32(), r.ReadString(), r.ReadString())),

        Codec<CancelQuery>("CQ1", (w, m, _) => w.Write(m.QueryId), (r, _) => new CancelQuery(r.ReadString())),

        Codec<QueryCancelled>("QX1", (w, m, _) => w.Write(m.QueryId), (r, _) => new QueryCancelled(r.ReadString())),

        Codec<RouterBusy>("RB1", (w, m, _) =>
        {
            w.Write(m.QueryId);
            w.Write(m.QueueDepth);
            w.Write(m.QueueCapacity);
        }, (r, _) => new RouterBusy(r.ReadString(), r.ReadInt32(), r.ReadInt32())),

        Codec<GetClusterStatus>("GS1", (_, _, _) => { }, (_, _) => GetClusterStatus.Instance),

        // CS1 (hosts without their host memory) is retired; never reuse it.
        Codec<ClusterStatus>("CS2", (w, m, _) =>
        {
            w.Write(m.RouterAddress);
            w.WriteList(m.Hosts, WriteHostStatus);
            w.Write(m.QueueDepth);
            w.Write(m.InFlight);
        }, (r, _) => new ClusterStatus(r.ReadString(), r.ReadList(ReadHostStatus), r.ReadInt32(), r.ReadInt32())),

        // RH1 (without DataEndpoint), RH2 (without the model fingerprint and the join proof) and RH3 (without the host
        // memory) are retired; never reuse them.
        Codec<RegisterHost>("RH4", (w, m, refs) =>
        {
            w.Write(m.HostId);
            refs.Write(w, m.Host);
            w.Write(m.Device);
            w.Write(m.MemoryUsedBytes);
            w.Write(m.MemoryTotalBytes);
            w.Write(m.Model);
            w.Write((byte)m.State);
            w.Write(m.KvBytes);
            w.Write(m.DataEndpoint);
            w.Write(m.ModelFingerprint);
            w.Write(m.JoinNonce);
            w.Write(m.JoinProof);
            w.Write(m.HostMemoryUsedBytes);
            w.Write(m.HostMemoryTotalBytes);
            w.Write(m.HostKvBytes);
        }, (r, refs) => new RegisterHost(
            r.ReadString(), refs.Read(r), r.ReadString(), r.ReadInt64(), r.ReadInt64(),
            r.ReadString(), ReadEnum<HostState>(r), r.ReadInt64(), r.ReadString(), r.ReadString(), r.ReadString(), r.ReadString(),
            r.ReadInt64(), r.ReadInt64(), r.ReadInt64())),

        Codec<JoinChallenge>("JC1", (w, m, _) =>
        {
            w.Write(m.HostId);
            w.Write(m.Nonce);
        }, (r, _) => new JoinChallenge(r.ReadString(), r.ReadString())),

        Codec<HostRefused>("HF1", (w, m, _) =>
        {
            w.Write(m.HostId);
            w.Write((byte)m.Reason);
            w.Write(m.Message);
        }, (r, _) => new HostRefused(r.ReadString(), ReadEnum<JoinRefusal>(r), r.ReadString())),

        Codec<HostRegistered>("HR1", (w, m, refs) =>
        {
            w.Write(m.HostId);
            refs.Write(w, m.Router);
        }, (r, refs) => new HostRegistered(r.ReadString(), refs.Read(r))),

        // RS1 (without the NCCL ring fields), RS2 (l_a and l_p instead of the plan), RS3 (without the prefill attention),
        // RS4 (without the KV store) and RS5 (the compressor by name) are retired; never reuse them.
        Codec<RunShard>("RS6", (w, m, refs) =>
        {
            w.Write(m.QueryId);
            refs.Write(w, m.Coordinator);
            WriteRing(w, m.Ring);
            WriteWork(w, m.Work);
        }, (r, refs) => new RunShard(r.ReadString(), refs.Read(r), ReadRing(r), ReadWork(r))),

        Codec<ShardTokens>("ST1", (w, m, _) =>
        {
            w.Write(m.QueryId);
            w.Write(m.Index);
            w.WriteInts(m.TokenIds);
        }, (r, _) => new ShardTokens(r.ReadString(), r.ReadInt32(), r.ReadInts())),

        Codec<ShardFinished>("SF1", (w, m, _) =>
        {
            w.Write(m.QueryId);
            w.Write(m.HostId);
            w.Write(m.Rank);
            w.Write(m.PrefillMs);
            w.Write(m.TotalMs);
            w.Write(m.GeneratedTokens);
        }, (r, _) => new ShardFinished(r.ReadString(), r.ReadString(), r.ReadInt32(), r.ReadDouble(), r.ReadDouble(), r.ReadInt32())),

        Codec<ShardFailed>("SX1", (w, m, _) =>
        {
            w.Write(m.QueryId);
            w.Write(m.HostId);
            w.Write(m.Reason);
            w.WriteNullable(m.BlamedHost);
            w.Write(m.DataPlane);
        }, (r, _) => new ShardFailed(r.ReadString(), r.ReadString(), r.ReadString(), r.ReadNullableString(), r.ReadBoolean())),

        Codec<NcclIdRequest>("NI1", (w, m, _) => w.Write(m.QueryId), (r, _) => new NcclIdRequest(r.ReadString())),

        Codec<NcclIdReply>("NR1", (w, m, _) =>
        {
            w.Write(m.QueryId);
            w.Write(m.Id is not null);
            if (m.Id is { } id)
            {
                w.Write7BitEncodedInt(id.Length);
                w.Write(id);
            }
            w.WriteNullable(m.Error);
        }, (r, _) => new NcclIdReply(r.ReadString(), r.ReadBoolean() ? ReadBytes(r) : null, r.ReadNullableString())),

        Codec<NcclRingCheck>("NC1", (w, m, _) =>
        {
            w.Write(m.QueryId);
            w.Write(m.RingId);
        }, (r, _) => new NcclRingCheck(r.ReadString(), r.ReadString())),

        Codec<NcclRingStatus>("NS1", (w, m, _) =>
        {
            w.Write(m.QueryId);
            w.Write(m.HostId);
            w.Write(m.RingId);
            w.Write(m.Ready);
        }, (r, _) => new NcclRingStatus(r.ReadString(), r.ReadString(), r.ReadString(), r.ReadBoolean())),

        Codec<DropNcclRing>("ND1", (w, m, _) =>
        {
            w.Write(m.RingId);
            w.Write(m.Reason);
        }, (r, _) => new DropNcclRing(r.ReadString(), r.ReadString())),
    ];

    private static readonly MessageCodec[] Everything = [.. All, .. OpsMessageCodecs.All];

    public static readonly FrozenDictionary<Type, MessageCodec> ByType = Everything.ToFrozenDictionary(c => c.Type);

    public static readonly FrozenDictionary<string, MessageCodec> ByManifest = Everything.ToFrozenDictionary(c => c.Manifest);

    public static IEnumerable<Type> Types => Everything.Select(c => c.Type);

    private static MessageCodec Codec<T>(string manifest, Action<BinaryWriter, T, ActorRefCodec> write, Func<BinaryReader, ActorRefCodec, T> read)
        where T : notnull =>
        new(typeof(T), manifest, (w, o, refs) => write(w, (T)o, refs), (r, refs) => read(r, refs));

    private static byte[] ReadBytes(BinaryReader r)
    {
        var n = r.Read7BitEncodedInt();
        if (n < 0 || n > r.BaseStream.Length - r.BaseStream.Position) throw new InvalidDataException($"byte count {n} does not fit the payload");
        return r.ReadBytes(n);
    }

    private static void WriteRing(BinaryWriter w, ShardRing g)
    {
        w.Write(g.Rank);
        w.Write(g.WorldSize);
        w.WriteStrings(g.HostIds);
        w.WriteStrings(g.DataEndpoints);
        w.Write(g.CollectiveTimeoutMs);
        w.Write(g.NcclUniqueId is not null);
        if (g.NcclUniqueId is { } id)
        {
            w.Write7BitEncodedInt(id.Length);
            w.Write(id);
        }
        w.Write(g.NcclRingId);
        w.Write(g.NcclReuse);
    }

    private static ShardRing ReadRing(BinaryReader r) => new()
    {
        Rank = r.ReadInt32(),
        WorldSize = r.ReadInt32(),
        HostIds = r.ReadStrings(),
        DataEndpoints = r.ReadStrings(),
        CollectiveTimeoutMs = r.ReadInt32(),
        NcclUniqueId = r.ReadBoolean() ? ReadBytes(r) : null,
        NcclRingId = r.ReadString(),
        NcclReuse = r.ReadBoolean(),
    };

    private static void WriteWork(BinaryWriter w, ShardWork k)
    {
        w.Write((byte)k.Mode);
        w.WriteInts(k.Plan.BlockLengths);
        w.Write(k.Plan.AnchorLength);
        w.Write(k.Plan.PassingLength);
        w.Write(k.Plan.TemplateOffset);
        w.Write(k.Plan.EmbedQuestion);
        w.Write((byte)k.Compressor);
        w.WriteInts(k.Document);
        w.WriteInts(k.Question);
        WriteGeneration(w, k.Generation);
        WritePrefillAttention(w, k.PrefillAttention);
        WriteKvStore(w, k.KvStore);
    }

    // The router validated every choice before sending: a host rejects values it does not know.
    private static ShardWork ReadWork(BinaryReader r) => new()
    {
        Mode = ReadEnum<AttentionMode>(r),
        Plan = new ShardPlan(r.ReadInts(), r.ReadInt32(), r.ReadInt32(), r.ReadInt32(), r.ReadBoolean()),
        Compressor = ReadEnum<CompressorKind>(r),
        Document = r.ReadInts(),
        Question = r.ReadInts(),
        Generation = ReadGeneration(r),
        PrefillAttention = ReadPrefillAttention(r),
        KvStore = ReadKvStore(r),
    };

    private static void WritePrefillAttention(BinaryWriter w, PrefillAttentionOptions? p)
    {
        w.Write(p is not null);
        if (p is null) return;
        w.Write((byte)p.Kind);
        foreach (var x in new[] { p.Budget, p.Segment, p.Block, p.Threshold }) w.WriteNullable(x);
    }

    // The kind is read as is (not ReadEnum): the router validates it and answers QueryFailed naming the value.
    private static PrefillAttentionOptions? ReadPrefillAttention(BinaryReader r) => r.ReadBoolean()
        ? new PrefillAttentionOptions((PrefillAttentionKind)r.ReadByte(), (int?)r.ReadNullableInt64(), (int?)r.ReadNullableInt64(),
            (int?)r.ReadNullableInt64(), (int?)r.ReadNullableInt64())
        : null;

    private static void WriteKvStore(BinaryWriter w, KvStoreOptions? k)
    {
        w.Write(k is not null);
        if (k is null) return;
        w.Write((byte)k.Kind);
        foreach (var x in new[] { k.Rank, k.Chunk, k.Budget, k.Outliers, k.Local }) w.WriteNullable(x);
        w.WriteNullable(k.ValuesOnHost is { } host ? (host ? 1L : 0L) : null);
    }

    // The kind is read as is (not ReadEnum): the router validates it and answers QueryFailed naming the value.
    private static KvStoreOptions? ReadKvStore(BinaryReader r) => r.ReadBoolean()
        ? new KvStoreOptions((KvStoreKind)r.ReadByte(), (int?)r.ReadNullableInt64(), (int?)r.ReadNullableInt64(), (int?)r.ReadNullableInt64(),
            (int?)r.ReadNullableInt64(), (int?)r.ReadNullableInt64(), r.ReadNullableInt64() is { } host ? host != 0 : null)
        : null;

    private static void WriteGeneration(BinaryWriter w, GenerationOptions g)
    {
        w.Write(g.MaxNewTokens);
        w.Write(g.Temperature);
        w.Write(g.TopP);
        w.WriteNullable(g.Seed);
        w.WriteStrings(g.StopStrings);
    }

    private static GenerationOptions ReadGeneration(BinaryReader r) =>
        new(r.ReadInt32(), r.ReadSingle(), r.ReadSingle(), r.ReadNullableInt64(), r.ReadStrings());

    private static void WriteHostStatus(BinaryWriter w, HostStatus h)
    {
        w.Write(h.HostId);
        w.Write(h.Address);
        w.Write(h.Device);
        w.Write(h.MemoryUsedBytes);
        w.Write(h.MemoryTotalBytes);
        w.Write(h.Model);
        w.Write((byte)h.State);
        w.Write(h.KvBytes);
        w.Write(h.HostMemoryUsedBytes);
        w.Write(h.HostMemoryTotalBytes);
        w.Write(h.HostKvBytes);
    }

    private static HostStatus ReadHostStatus(BinaryReader r) =>
        new(r.ReadString(), r.ReadString(), r.ReadString(), r.ReadInt64(), r.ReadInt64(), r.ReadString(), ReadEnum<HostState>(r), r.ReadInt64(),
            r.ReadInt64(), r.ReadInt64(), r.ReadInt64());

    private static TEnum? ReadNullableEnum<TEnum>(BinaryReader r) where TEnum : struct, Enum
    {
        if (r.ReadNullableInt64() is not { } raw) return null;
        var value = (TEnum)Enum.ToObject(typeof(TEnum), raw);
        return Enum.IsDefined(value) ? value : throw new InvalidDataException($"unknown {typeof(TEnum).Name} value {raw}");
    }

    /// <summary>Rejects enum values this node does not know instead of passing them on.</summary>
    private static TEnum ReadEnum<TEnum>(BinaryReader r) where TEnum : struct, Enum
    {
        var raw = r.ReadByte();
        var value = (TEnum)Enum.ToObject(typeof(TEnum), raw);
        return Enum.IsDefined(value) ? value : throw new InvalidDataException($"unknown {typeof(TEnum).Name} value {raw}");
    }
}
