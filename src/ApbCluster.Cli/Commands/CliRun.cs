using ApbCluster.Model;
using ApbCluster.NativeInterop;

namespace ApbCluster.Cli.Commands;

/// <summary>Exit codes and error reporting shared by every verb: one line on stderr, no stack trace for
/// problems the user can fix.</summary>
internal static class CliRun
{
    public const int Ok = 0, Failed = 1, Usage = 2;

    public static int Guard(Func<int> body)
    {
        try { return body(); }
        catch (ApbCluster.Parallel.Plan.PlanException e)
        {
            // A plan the options make impossible: name the option, not the planner's parameter.
            Console.Error.WriteLine($"error: {OptionOf(e.Parameter)}: {Bare(e)}");
            return Usage;
        }
        catch (Exception e) when (e is ModelLoadException or TorchLoadException or CliUsageException or ArgumentException or FileNotFoundException or InvalidDataException or InvalidOperationException)
        {
            Console.Error.WriteLine("error: " + (e is ArgumentException a ? Bare(a) : e.Message));
            return e is CliUsageException ? Usage : Failed;
        }
        catch (System.Runtime.InteropServices.ExternalException e)
        {
            // libtorch's own errors (e.g. CUDA out of memory): its message, without a .NET stack trace.
            Console.Error.WriteLine("error (libtorch): " + e.Message);
            return Failed;
        }
    }

    /// <summary>The message without .NET's " (Parameter 'numKvHeads')" suffix: users know options, not parameter names.</summary>
    private static string Bare(ArgumentException e) =>
        e.ParamName is { } p && e.Message.EndsWith($" (Parameter '{p}')", StringComparison.Ordinal) ? e.Message[..^($" (Parameter '{p}')".Length)] : e.Message;

    private static string OptionOf(string parameter) => parameter switch
    {
        "anchorLength" => "--anchor",
        "passingLength" => "--passing",
        "hosts" or "numHeads" or "numKvHeads" => "--hosts",
        "balanced" => "--balanced",
        "documentLength" or "questionLength" => "--context",
        _ => parameter,
    };
}

/// <summary>The options given do not make sense together (exit code 2).</summary>
internal sealed class CliUsageException(string message) : Exception(message);
