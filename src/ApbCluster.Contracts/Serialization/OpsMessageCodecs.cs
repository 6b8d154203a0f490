namespace ApbCluster.Contracts.Serialization;

/// <summary>Wire formats of the operations messages (OpsMessages.cs); same rules as MessageCodecs.</summary>
internal static class OpsMessageCodecs
{
    public static readonly MessageCodec[] All =
    [
        Codec<DrainHost>("DH1", (w, m) => w.Write(m.HostId), r => new DrainHost(r.ReadString())),
        Codec<UndrainHost>("UH1", (w, m) => w.Write(m.HostId), r => new UndrainHost(r.ReadString())),
        Codec<HostDrainChanged>("HD1", (w, m) =>
        {
            w.Write(m.HostId);
            w.Write(m.Draining);
            w.Write(m.Known);
        }, r => new HostDrainChanged(r.ReadString(), r.ReadBoolean(), r.ReadBoolean())),
        Codec<ListQueries>("LQ1", (_, _) => { }, _ => ListQueries.Instance),
        Codec<QueryList>("QL1", (w, m) => w.WriteList(m.Queries, WriteInfo), r => new QueryList(r.ReadList(ReadInfo))),
        Codec<TraceQuery>("TQ1", (w, m) => w.Write(m.QueryId), r => new TraceQuery(r.ReadString())),
        Codec<QueryNotFound>("QN1", (w, m) => w.Write(m.QueryId), r => new QueryNotFound(r.ReadString())),
    ];

    private static void WriteInfo(BinaryWriter w, QueryInfo q)
    {
        w.Write(q.QueryId);
        w.Write(q.Phase);
        w.Write(q.SubmittedUnixMs);
        w.Write(q.PromptTokens);
        w.Write(q.GeneratedTokens);
        w.WriteStrings(q.Hosts);
    }

    private static QueryInfo ReadInfo(BinaryReader r) =>
        new(r.ReadString(), r.ReadString(), r.ReadInt64(), r.ReadInt32(), r.ReadInt32(), r.ReadStrings());

    private static MessageCodec Codec<T>(string manifest, Action<BinaryWriter, T> write, Func<BinaryReader, T> read)
        where T : notnull =>
        new(typeof(T), manifest, (w, o, _) => write(w, (T)o), (r, _) => read(r));
}
