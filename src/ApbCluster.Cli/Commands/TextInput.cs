using System.Text;
using ApbCluster.Contracts;
using ApbCluster.Model.Tokenization;

namespace ApbCluster.Cli.Commands;

/// <summary>
/// A text file (or stdin for "-") a verb feeds to the model. It must be UTF-8: other bytes would
/// decode to U+FFFD and the model would read garbage, so the error names the byte offset of the
/// first bad byte. A leading U+FEFF is kept, as Python's UTF-8 codec (and so a Hugging Face
/// tokenizer fed the same file) keeps it.
/// </summary>
internal static class TextInput
{
    private static readonly UTF8Encoding Strict = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    public static string Read(string option, string path)
    {
        byte[] bytes;
        if (path == "-")
        {
            using var stdin = new MemoryStream();
            Console.OpenStandardInput().CopyTo(stdin);
            bytes = stdin.ToArray();
        }
        else if (!File.Exists(path)) throw new CliUsageException($"{option} {path}: file not found.");
        else bytes = File.ReadAllBytes(path);

        var name = path == "-" ? "standard input" : path;
        if (bytes.Length == 0) throw new CliUsageException($"{option} {name}: the file is empty.");
        if (Utf8Check.FirstInvalidByte(bytes) is var bad and >= 0)
            throw new CliUsageException($"{option} {name}: not UTF-8 text (byte {bad} of {bytes.Length}, 0x{bytes[bad]:X2}, is not valid UTF-8); convert it, e.g. iconv -f latin1 -t utf-8.");
        return Strict.GetString(bytes);
    }
}
