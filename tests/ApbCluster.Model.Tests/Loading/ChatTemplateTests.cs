using ApbCluster.Model.Config;
using ApbCluster.Model.Tests.Support;
using ApbCluster.Model.Tokenization;
using Xunit;

namespace ApbCluster.Model.Tests.Loading;

public class ChatTemplateTests
{
    private static readonly ChatMessage[] OneQuestion = [ChatMessage.User("What is APB?")];

    private static (ModelConfig, TextTokenizer) Load(TempDir tmp, TinyCheckpointOptions opts)
    {
        TinyCheckpoint.Create(opts with { Directory = tmp.Path });
        return (ModelConfig.Load(tmp.Path), TextTokenizer.Load(tmp.Path));
    }

    [Fact]
    public void Llama3RendersLikeTheOfficialTemplate()
    {
        var t = new Llama3ChatTemplate();
        Assert.Equal(
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWhat is APB?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
            t.Render(OneQuestion, addGenerationPrompt: true));
        Assert.Equal(
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>" +
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>" +
            "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>",
            t.Render([ChatMessage.System("Be brief."), ChatMessage.User("  Hi \n"), ChatMessage.Assistant("Hello!")], addGenerationPrompt: false));
    }

    [Fact]
    public void Llama31RendersTheDateHeaderSystemTurnLikeTheOfficialTemplate()
    {
        // HF's Llama 3.1 template (no tools, default date): a system turn always comes first.
        var t = new Llama3ChatTemplate(withDateHeader: true);
        Assert.Equal(
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|>" +
            "<|start_header_id|>user<|end_header_id|>\n\nWhat is APB?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
            t.Render(OneQuestion, addGenerationPrompt: true));
        Assert.Equal(
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nBe brief.<|eot_id|>" +
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
            t.Render([ChatMessage.System(" Be brief. "), ChatMessage.User("Hi")], addGenerationPrompt: false));
    }

    /// <summary>
    /// Jinja's |trim is Python's str.strip(). Expected values from Python's jinja2 3.1:
    /// Environment().from_string("{{ m | trim }}").render(m="\x1c\x1f Hi \u3000\x1d\x85") == "Hi";
    /// the zero-width space U+200B is not whitespace to Python and stays.
    /// </summary>
    [Fact]
    public void TrimStripsWhatPythonStrips()
    {
        var t = new Llama3ChatTemplate();
        Assert.Equal("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
            t.Render([ChatMessage.User("\u001C\u001F Hi \u3000\u001D\u0085")], addGenerationPrompt: false));
        Assert.Equal("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n\u200B Hi \u200B<|eot_id|>",
            t.Render([ChatMessage.User("\u200B Hi \u200B")], addGenerationPrompt: false));
    }

    /// <summary>Llama 3.2's template renders strftime_now("%d %b %Y"): Python gives "02 Dec 2026" for that day.</summary>
    [Fact]
    public void Llama32WritesTodaysDate()
    {
        var t = new Llama3ChatTemplate(withDateHeader: true, today: new DateOnly(2026, 12, 2));
        Assert.StartsWith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 02 Dec 2026\n\n<|eot_id|>",
            t.Render(OneQuestion, addGenerationPrompt: true));

        using var tmp = new TempDir();
        var (config, tok) = Load(tmp, TinyCheckpointOptions.Llama);
        const string llama32 = "{{- 'Cutting Knowledge Date: December 2023\\n' }}{%- if strftime_now is defined %}{%- set date_string = strftime_now(\"%d %b %Y\") %}{%- endif %}";
        var rendered = ChatTemplate.For(config, tok, llama32).Render(OneQuestion, addGenerationPrompt: true);
        Assert.Contains($"Today Date: {DateTime.Now.ToString("dd MMM yyyy", System.Globalization.CultureInfo.InvariantCulture)}\n", rendered);
    }

    [Fact]
    public void TheCheckpointsJinjaTemplateSelectsTheLlama31Form()
    {
        using var tmp = new TempDir();
        var (config, tok) = Load(tmp, TinyCheckpointOptions.Llama);
        Assert.Null(ChatTemplate.ReadJinja(tmp.Path));
        Assert.Equal("llama3", ChatTemplate.For(config, tok, null).Name);

        var tokConfig = Path.Combine(tmp.Path, "tokenizer_config.json");
        File.WriteAllText(tokConfig, """
            {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>",
             "chat_template": "{{- bos_token }}{{- 'Cutting Knowledge Date: December 2023\\n' }}..."}
            """);
        Assert.Equal("llama3.1", ChatTemplate.For(config, tok, ChatTemplate.ReadJinja(tmp.Path)).Name);

        File.WriteAllText(tokConfig, """
            {"chat_template": [{"name": "tool_use", "template": "x"}, {"name": "default", "template": "Cutting Knowledge Date"}]}
            """);
        Assert.Equal("Cutting Knowledge Date", ChatTemplate.ReadJinja(tmp.Path));
    }

    [Fact]
    public void Qwen2RendersLikeTheOfficialTemplate()
    {
        var t = new Qwen2ChatTemplate();
        Assert.Equal(
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n" +
            "<|im_start|>user\nWhat is APB?<|im_end|>\n<|im_start|>assistant\n",
            t.Render(OneQuestion, addGenerationPrompt: true));
        Assert.Equal(
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n",
            t.Render([ChatMessage.System("Be brief."), ChatMessage.User("Hi")], addGenerationPrompt: false));
    }

    [Fact]
    public void PlainJoinsDocumentAndQuestionByNewline()
    {
        var t = new PlainChatTemplate();
        Assert.Equal("The document.\nThe question?", t.Render([ChatMessage.System("The document."), ChatMessage.User("The question?")], false));
    }

    [Fact]
    public void TemplateIsChosenFromTheTokenizer()
    {
        using var a = new TempDir();
        using var b = new TempDir();
        var (lc, lt) = Load(a, TinyCheckpointOptions.Llama);
        var (qc, qt) = Load(b, TinyCheckpointOptions.Qwen2);
        Assert.Equal("llama3", ChatTemplate.For(lc, lt).Name);
        Assert.Equal("qwen2", ChatTemplate.For(qc, qt).Name);
    }

    [Theory]
    [InlineData("llama")]
    [InlineData("qwen2")]
    public void UserContentOffsetPointsAtTheQuestionTokens(string family)
    {
        using var tmp = new TempDir();
        var (config, tok) = Load(tmp, family == "llama" ? TinyCheckpointOptions.Llama : TinyCheckpointOptions.Qwen2);
        var template = ChatTemplate.For(config, tok);
        var p = template.Encode(tok, OneQuestion, addGenerationPrompt: true);

        Assert.Equal(template.Render(OneQuestion, true), p.Text);
        // Segment-wise ids equal encoding the whole rendered text (special tokens recognised).
        Assert.Equal(tok.Encode(p.Text, addBos: false), p.Ids);
        var question = tok.Encode("What is APB?", addBos: false);
        Assert.Equal(question, p.Ids.Skip(p.UserContentStart).Take(p.UserContentEnd - p.UserContentStart));

        var prefix = tok.Decode(p.Ids.Take(p.UserContentStart), skipSpecial: false);
        Assert.Equal(family == "llama"
            ? "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n"
            : "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\n", prefix);
    }

    [Fact]
    public void PlainEncodePrependsBos()
    {
        using var tmp = new TempDir();
        var (_, tok) = Load(tmp, TinyCheckpointOptions.Llama);
        var p = new PlainChatTemplate().Encode(tok, [ChatMessage.System("Doc."), ChatMessage.User("Q?")], addGenerationPrompt: false);
        Assert.Equal(tok.BosId, p.Ids[0]);
        Assert.Equal(tok.Encode("Q?", false), p.Ids.Skip(p.UserContentStart).Take(p.UserContentEnd - p.UserContentStart));
    }
}
