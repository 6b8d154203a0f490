using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace ApbCluster.Admin;

/// <summary>
/// The admin wire protocol: one JSON object per line, UTF-8, over TCP. A connection may carry
/// many requests; each gets exactly one response line, in order.
/// Request  {"cmd":"cluster show","args":["-a","..."],"token":"..."}
/// Response {"exitCode":0,"text":"human table","json":{...}}
/// The reserved cmd "palettes" lists the commands the node offers.
/// Streaming commands (cluster tail, log tail, query trace) answer with any number of lines
/// marked "more":true and then one final line without it; while a stream runs, any line the
/// client sends (by convention {"cmd":"stop"}) or closing the connection ends it.
/// </summary>
public sealed record AdminRequest(
    [property: JsonPropertyName("cmd")] string Cmd,
    [property: JsonPropertyName("args")] IReadOnlyList<string> Args,
    [property: JsonPropertyName("token")] string? Token = null);

public sealed record AdminResponse(
    [property: JsonPropertyName("exitCode")] int ExitCode,
    [property: JsonPropertyName("text")] string Text,
    [property: JsonPropertyName("json")] JsonNode? Json = null,
    [property: JsonPropertyName("more"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)] bool More = false)
{
    /// <summary>One line of a streaming command; the final line follows later.</summary>
    public static AdminResponse Line(string text, JsonNode? json = null) => new(AdminExitCodes.Ok, text, json, More: true);

    public static AdminResponse Ok(string text, JsonNode? json = null) => new(AdminExitCodes.Ok, text, json);

    public static AdminResponse Error(string text) => new(AdminExitCodes.CommandError, text);

    public static AdminResponse Usage(string text) => new(AdminExitCodes.Usage, text);
}

/// <summary>A command a node offers, as listed by "palettes".</summary>
public sealed record AdminCommandInfo(
    [property: JsonPropertyName("palette")] string Palette,
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("usage")] string Usage,
    [property: JsonPropertyName("description")] string Description,
    [property: JsonPropertyName("streaming"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)] bool Streaming = false)
{
    [JsonIgnore]
    public string FullName => $"{Palette} {Name}";
}

/// <summary>Documented exit codes of the admin shell (docs/operations.md).</summary>
public static class AdminExitCodes
{
    public const int Ok = 0;
    public const int CommandError = 1;
    public const int Usage = 2;
    public const int CannotConnect = 3;
}

public static class AdminJson
{
    public static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web) { WriteIndented = false };

    public const string PalettesCommand = "palettes";

    /// <summary>Sent by the client while a stream runs to end it.</summary>
    public const string StopCommand = "stop";
}
