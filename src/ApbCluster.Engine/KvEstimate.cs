using ApbCluster.Model.Config;
using ApbCluster.Model.KvStores;
using ApbCluster.Parallel.Plan;

namespace ApbCluster.Engine;

/// <summary>
/// How much KV a query leaves on each host, from its plan alone (the router admits by it before any host is
/// involved): tokens x layers x kv heads x head dim x 2 (K and V) x dtype size. A host keeps the document tokens of
/// its own block; the last host also appends the question and every generated token in Phase 2. What prefill holds
/// only for a moment (the anchor and passing blocks, one layer's activations) is not counted.
/// </summary>
public static class KvEstimate
{
    /// <summary>Bytes per token across every layer on <paramref name="device"/> (the dtype a host loads there:
    /// <see cref="ModelSpec"/> runs fp32 on CPU and the checkpoint's dtype on GPUs).</summary>
    public static long BytesPerToken(ModelConfig model, string device) =>
        (long)model.NumLayers * model.NumKvHeads * model.HeadDim * 2 * DtypeSize(model, device);

    /// <summary>Each rank's KV bytes for the query, in rank order.</summary>
    public static long[] PerRank(ApbPlan plan, int maxNewTokens, ModelConfig model, IReadOnlyList<string> devices)
    {
        var bytes = new long[plan.Hosts];
        for (int rank = 0; rank < plan.Hosts; rank++)
        {
            long tokens = plan.LocalPositions(rank).Count(p => p < plan.DocumentLength);
            if (rank == plan.Hosts - 1) tokens += plan.QuestionLength + maxNewTokens;
            bytes[rank] = tokens * BytesPerToken(model, devices[rank]);
        }
        return bytes;
    }

    /// <summary>Each rank's (device, host) bytes for a query decoding from ShadowKV stores: a host's store over its
    /// document tokens (<see cref="ShadowKvStore.EstimateBytes"/>: values on the host count as host bytes), and on the
    /// last host the question's and new tokens' own KV, which stays full. The full shard a host prefills is converted
    /// layer by layer right after prefill and is not counted.</summary>
    public static (long[] Device, long[] Host) PerRank(ApbPlan plan, int maxNewTokens, ModelConfig model, IReadOnlyList<string> devices,
        ShadowKvOptions shadowKv)
    {
        var (device, host) = (new long[plan.Hosts], new long[plan.Hosts]);
        for (int rank = 0; rank < plan.Hosts; rank++)
        {
            long tokens = plan.LocalPositions(rank).Count(p => p < plan.DocumentLength);
            // The store keeps the dtype the host runs: fp32 on CPU whatever the checkpoint says.
            var hosted = model with { TorchDtype = DtypeSize(model, devices[rank]) == 4 ? "float32" : model.TorchDtype };
            (device[rank], host[rank]) = ShadowKvStore.EstimateBytes(tokens, hosted, shadowKv);
            if (rank == plan.Hosts - 1) device[rank] += (plan.QuestionLength + maxNewTokens) * BytesPerToken(model, devices[rank]);
        }
        return (device, host);
    }

    private static int DtypeSize(ModelConfig model, string device) =>
        !device.StartsWith("cuda", StringComparison.Ordinal) || model.TorchDtype == "float32" ? 4 : 2;

    /// <summary>"17.2 GiB", "512.0 KiB": sizes for people.</summary>
    public static string Format(long bytes)
    {
        string[] units = ["B", "KiB", "MiB", "GiB", "TiB"];
        double value = bytes;
        int unit = 0;
        while (Math.Abs(value) >= 1024 && unit < units.Length - 1)
        {
            value /= 1024;
            unit++;
        }
        return unit == 0 ? $"{bytes} B" : string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{value:0.0} {units[unit]}");
    }
}
