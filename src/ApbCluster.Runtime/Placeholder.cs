namespace ApbCluster.Runtime; internal static class Placeholder;
