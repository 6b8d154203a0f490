using Akka.Actor;
using Akka.Actor.Setup;
using Akka.Configuration;
using Akka.Event;

namespace ApbCluster.Client.Logging;

/// <summary>Creates an ActorSystem whose log leaves out what Akka reports on healthy runs (the filters given,
/// plus <see cref="ShutdownChannelNoiseFilter"/>); real failures still print.</summary>
public static class QuietActorSystem
{
    public static ActorSystem Create(string name, Config config, params LogFilterBase[] filters)
    {
        var closing = new ShutdownChannelNoiseFilter();
        var setup = BootstrapSetup.Create().WithConfig(config).And(new LogFilterSetup([closing, .. filters]));
        var system = ActorSystem.Create(name, setup);
        closing.Watch(system);
        return system;
    }
}
