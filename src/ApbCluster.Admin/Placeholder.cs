namespace ApbCluster.Admin; internal static class Placeholder;
