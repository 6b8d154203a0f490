using ApbCluster.Contracts;

namespace ApbCluster.Cli.Commands;

/// <summary>`--compressor`: the CLI's short words (and the protocol's full names), parsed once into the typed kind.</summary>
internal static class CompressorOption
{
    public const string Words = "retaining, query or random";

    /// <summary>Null text: <see cref="CompressorKind.Default"/> (the caller decides what that means).</summary>
    public static CompressorKind Parse(string? text) => text switch
    {
        null => CompressorKind.Default,
        "query" => CompressorKind.QueryAware,
        "retaining" => CompressorKind.RetainingHeads,
        "random" => CompressorKind.Random,
        _ when text.Length > 0 && CompressorNames.TryParse(text, out var kind) => kind,
        _ => throw new CliUsageException($"--compressor '{text}': expected {Words}."),
    };
}
