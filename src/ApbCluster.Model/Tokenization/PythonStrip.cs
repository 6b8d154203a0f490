namespace ApbCluster.Model.Tokenization;

/// <summary>
/// Jinja's |trim is Python's str.strip(): it strips what str.isspace() calls whitespace, which is
/// .NET's char.IsWhiteSpace plus the information separators U+001C..U+001F. A template that trims
/// with .NET's rules would keep those and tokenize differently from Hugging Face.
/// </summary>
public static class PythonStrip
{
    public static string Strip(string s)
    {
        int start = 0, end = s.Length;
        while (start < end && IsSpace(s[start])) start++;
        while (end > start && IsSpace(s[end - 1])) end--;
        return s[start..end];
    }

    /// <summary>Python's str.isspace for one UTF-16 unit (every Unicode space is in the BMP).</summary>
    public static bool IsSpace(char c) => char.IsWhiteSpace(c) || c is >= '\u001C' and <= '\u001F';
}
