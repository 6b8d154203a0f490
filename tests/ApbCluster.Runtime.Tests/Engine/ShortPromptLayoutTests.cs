using ApbCluster.Model.Tokenization;
using ApbCluster.Engine;
using ApbCluster.Runtime.Tests.Cluster;

namespace ApbCluster.Runtime.Tests.Engine;

/// <summary>A prompt without a document (a lone chat message) is rendered alone: exactly what the model's chat
/// template makes of that one user message, cut so that Phase 2 starts at the assistant header.</summary>
public class ShortPromptLayoutTests
{
    [Fact]
    public void With_a_chat_template_the_prompt_is_the_template_around_it_and_nothing_else()
    {
        var dir = CliAskClusterTests.DemoModel(chatTemplate: true);
        try
        {
            var spec = ModelSpec.Parse(null, dir)!;
            var tokenizer = TextTokenizer.Load(dir);
            var template = ChatTemplate.For(spec.Config(), tokenizer, ChatTemplate.ReadJinja(dir));
            var rendered = template.Encode(tokenizer, [ChatMessage.User("What is 2+2?")], addGenerationPrompt: true);

            var layout = ITokenCodec.For(spec).ShortLayout("What is 2+2?");
            Assert.Equal(rendered.Ids.Select(i => (long)i), layout.Document.Concat(layout.Question));
            Assert.Equal(rendered.Ids.Skip(rendered.UserContentEnd).Select(i => (long)i), layout.Question);
            Assert.NotEmpty(layout.Question);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void Without_a_template_it_is_bos_and_the_text()
    {
        var spec = ModelSpec.Parse("random:tiny:7", null)!;
        var codec = ITokenCodec.For(spec);
        var layout = codec.ShortLayout("Say something.");
        Assert.Equal(codec.Encode("Say something.", addBos: true).Select(i => (long)i), layout.Document.Concat(layout.Question));
        Assert.Single(layout.Question);
    }
}
