namespace ApbCluster.Model;

/// <summary>
/// A model folder could not be loaded. Every loading error (config, weights, tokenizer) is this
/// type; the message names the file and the key or tensor at fault so that a user can fix it.
/// </summary>
public sealed class ModelLoadException : Exception
{
    public ModelLoadException(string message) : base(message) { }
    public ModelLoadException(string message, Exception inner) : base(message, inner) { }
}
