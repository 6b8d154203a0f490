namespace ApbCluster.Model.Generation;

/// <summary>
/// One rule for every path that runs a prompt (apb ask in process, the router for the cluster and
/// HTTP): document, question and the tokens to generate must fit the model's position table
/// (max_position_embeddings). Past it rotary positions are extrapolated and the answer is
/// garbage with no error, so the query is refused before any work.
/// </summary>
public static class PositionBudget
{
    /// <summary>Null when it fits; otherwise the reason, in the numbers a user can change.</summary>
    public static string? Check(long documentTokens, long questionTokens, long maxNewTokens, long maxPositions)
    {
        var total = documentTokens + questionTokens + maxNewTokens;
        return total <= maxPositions ? null
            : $"context ({documentTokens}) + question ({questionTokens}) + max new tokens ({maxNewTokens}) = {total} tokens exceeds the model's limit of {maxPositions} (max_position_embeddings)";
    }
}
