namespace ApbCluster.Parallel.Collectives;

/// <summary>
/// A collective that can outlive one use (an NCCL communicator kept warm across queries) and be aborted
/// safely from another thread. <see cref="RequestAbort"/> is the only member for threads other than the one
/// using it: that thread carries the abort out at its next poll or call and gets a
/// <see cref="ApbCluster.NativeInterop.CollectiveException"/>. <see cref="Abort"/> (immediate) is for the
/// owner thread, or when no thread uses the collective. Abort, never finalize, a collective whose ranks may
/// disagree about where they are (a cancelled or failed run): finalizing waits for peers.
/// </summary>
public interface IAbortableCollective : ICollective
{
    /// <summary>Thread-safe request; the first reason wins.</summary>
    void RequestAbort(string reason);

    /// <summary>Immediate abort (ncclCommAbort) and release; owner thread only. Safe to call twice.</summary>
    void Abort(string reason);

    /// <summary>Aborted, or an abort was requested: it must not be used again.</summary>
    bool IsAborted { get; }

    /// <summary>The deadline of every wait from now on (each use may carry its own).</summary>
    new TimeSpan Deadline { get; set; }
}
