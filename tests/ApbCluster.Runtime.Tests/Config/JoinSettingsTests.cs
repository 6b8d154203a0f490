using ApbCluster.Runtime.Config;
using ApbCluster.Engine;
using ApbCluster.Runtime.Hosting;

namespace ApbCluster.Runtime.Tests.Config;

/// <summary>The join secret's settings: from the environment or a file, checked at boot, and required unless insecure.</summary>
public sealed class JoinSettingsTests
{
    private static NodeConfig Load(params (string Name, string Value)[] env) =>
        NodeConfig.Load(env.ToDictionary(e => e.Name, e => (string?)e.Value));

    [Fact]
    public void No_secret_is_refused_at_start_unless_insecure_join_is_allowed()
    {
        var e = Assert.Throws<NodeConfigException>(() => Load().Join.RequireSecretOrInsecure());
        Assert.Contains("no join secret: set APB_JOIN_SECRET", e.Message);
        Load(("APB_ALLOW_INSECURE_JOIN", "on")).Join.RequireSecretOrInsecure();
        Assert.Contains("INSECURE", Load(("APB_ALLOW_INSECURE_JOIN", "on")).Describe());
        Assert.Contains("APB_ALLOW_INSECURE_JOIN='maybe' must be on or off",
            Assert.Throws<NodeConfigException>(() => Load(("APB_ALLOW_INSECURE_JOIN", "maybe"))).Message);
    }

    [Fact]
    public void The_secret_comes_from_the_environment_or_a_file_and_must_be_long_enough()
    {
        var config = Load(("APB_JOIN_SECRET", "0123456789abcdef"), ("APB_PREVIOUS_JOIN_SECRET", "fedcba9876543210"));
        config.Join.RequireSecretOrInsecure();
        Assert.Equal(2, config.Join.Accepted.Count);
        Assert.DoesNotContain("0123456789abcdef", config.Describe()); // the banner never shows it

        var file = Path.GetTempFileName();
        try
        {
            File.WriteAllText(file, "0123456789abcdef\n");
            Assert.Equal(config.Join.Secret, Load(("APB_JOIN_SECRET_FILE", file)).Join.Secret); // the trailing newline is not part of it
            Assert.Contains("set one", Assert.Throws<NodeConfigException>(() => Load(("APB_JOIN_SECRET_FILE", file), ("APB_JOIN_SECRET", "0123456789abcdef"))).Message);
        }
        finally
        {
            File.Delete(file);
        }
        Assert.Contains("cannot be read", Assert.Throws<NodeConfigException>(() => Load(("APB_JOIN_SECRET_FILE", "/nonexistent/apb-secret"))).Message);
        Assert.Contains("is 5 bytes; use at least 16", Assert.Throws<NodeConfigException>(() => Load(("APB_JOIN_SECRET", "short"))).Message);
        Assert.Contains("without a current", Assert.Throws<NodeConfigException>(() => Load(("APB_PREVIOUS_JOIN_SECRET", "fedcba9876543210"))).Message);
    }

    [Fact]
    public void Model_fingerprints_tell_models_apart_and_agree_on_the_same_one()
    {
        var tiny7 = ModelFingerprint.Of(ModelSpec.Parse("random:tiny:7", null));
        Assert.Matches("^sha256:[0-9a-f]{16}$", tiny7);
        Assert.Equal(tiny7, ModelFingerprint.Of(ModelSpec.Parse("random:tiny:7", null)));
        Assert.NotEqual(tiny7, ModelFingerprint.Of(ModelSpec.Parse("random:tiny:8", null)));
        Assert.Equal("", ModelFingerprint.Of(null));
        Assert.Equal(4, NodeExitCodes.For(new JoinRefusedReason("x")));
    }

    [Fact]
    public void A_model_folder_is_fingerprinted_by_its_config_and_tokenizer()
    {
        var demo = Path.Combine(Root(), "src", "ApbCluster.Cli", "demo-model");
        var copy = Directory.CreateTempSubdirectory("apb-fingerprint-").FullName;
        try
        {
            foreach (var name in new[] { "config.json", "tokenizer.json", "tokenizer_config.json" })
                File.Copy(Path.Combine(demo, name), Path.Combine(copy, name));
            var original = ModelFingerprint.Of(ModelSpec.Parse(null, demo));
            Assert.Equal(original, ModelFingerprint.Of(ModelSpec.Parse(null, copy))); // the folder's name and weights do not count
            File.AppendAllText(Path.Combine(copy, "tokenizer.json"), " ");
            Assert.NotEqual(original, ModelFingerprint.Of(ModelSpec.Parse(null, copy))); // another tokenizer does
        }
        finally
        {
            Directory.Delete(copy, recursive: true);
        }
    }

    private static string Root()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "ApbCluster.sln"))) return dir.FullName;
        throw new DirectoryNotFoundException("repository root (ApbCluster.sln) not found above the test binaries");
    }
}
