using Xunit;

namespace ApbCluster.Parallel.Tests.Gpu;

/// <summary>
/// GPU tests run one at a time: two sets of NCCL communicators driven by threads of one process on the
/// same GPUs can deadlock each other (each waits on a kernel the other's queue holds back), and timings
/// and memory figures need the GPUs to themselves.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class GpuCollection
{
    public const string Name = "gpu (one at a time)";
}
