namespace ApbCluster.NativeInterop;

/// <summary>
/// A collective (all-gather, send, receive, ...) failed or missed its deadline. Defined here, in the
/// lowest layer that raises it (the NCCL watchdog), so every <c>ICollective</c> backend throws the same type.
/// </summary>
public sealed class CollectiveException : Exception
{
    /// <summary>The operation, e.g. "AllGather", "Send", "Receive".</summary>
    public string Operation { get; }
    /// <summary>The caller's label, e.g. "layer 3 passing block".</summary>
    public string What { get; }
    /// <summary>The rank that observed the failure.</summary>
    public int Rank { get; }
    /// <summary>The peer involved in a point-to-point operation, or the root of a broadcast; null otherwise.</summary>
    public int? Peer { get; }
    /// <summary>Ranks that never arrived before the deadline (empty unless <see cref="TimedOut"/>).</summary>
    public IReadOnlyList<int> MissingRanks { get; }
    /// <summary>True when the deadline passed.</summary>
    public bool TimedOut { get; }
    /// <summary>True when this rank stopped only because another rank's failure aborted the group:
    /// the other rank's exception is the one that says what went wrong.</summary>
    public bool Aborted { get; init; }

    public CollectiveException(string operation, string what, int rank, string detail,
        int? peer = null, IReadOnlyList<int>? missingRanks = null, bool timedOut = false, Exception? inner = null)
        : base(Format(operation, what, rank, peer, detail), inner)
    {
        Operation = operation;
        What = what;
        Rank = rank;
        Peer = peer;
        MissingRanks = missingRanks ?? [];
        TimedOut = timedOut;
    }

    private static string Format(string operation, string what, int rank, int? peer, string detail) =>
        $"{operation} '{what}' failed on rank {rank}{(peer is { } p ? $" (peer {p})" : "")}: {detail}";
}
