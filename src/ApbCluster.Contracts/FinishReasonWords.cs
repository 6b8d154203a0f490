namespace ApbCluster.Contracts;

/// <summary>
/// The one spelling of a finish reason users see (CLI JSON, HTTP, admin shell): OpenAI's. "stop" covers
/// a stop string and the end-of-sequence token alike, "length" the token limit.
/// </summary>
public static class FinishReasonWords
{
    public static string ToOpenAi(this FinishReason reason) => reason switch
    {
        FinishReason.Length => "length",
        FinishReason.Cancelled => "cancelled",
        _ => "stop",
    };
}
