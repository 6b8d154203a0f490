namespace ApbCluster.Parallel.Plan;

public sealed partial class ApbPlan
{
    /// <summary>Blocks at least this long get l_a / l_p rounded down to multiples of 64 (kernel tiles).</summary>
    public const int RoundAbove = 1024;

    /// <summary>The default anchor is a block / 8: as accurate as the paper's block / 4 on our measurements and
    /// faster (docs/algorithm.md, "The anchor's length").</summary>
    public const int DefaultAnchorDivisor = 8;

    /// <summary>Fills the paper's defaults, splits the document and validates; throws <see cref="PlanException"/>.</summary>
    public static ApbPlan Create(PlanRequest r)
    {
        int h = r.Hosts, n = r.DocumentLength;
        if (h < 1) throw new PlanException("hosts", $"hosts ({h}) must be at least 1.");
        if (n < 1) throw new PlanException("documentLength", $"the document is empty (documentLength = {n}).");
        if (h > n) throw new PlanException("hosts", $"hosts ({h}) exceed the document's tokens ({n}): every host needs at least one token.");
        if (r.QuestionLength < 0) throw new PlanException("questionLength", $"questionLength ({r.QuestionLength}) is negative.");
        if (r.TemplateOffset < 0) throw new PlanException("templateOffset", $"templateOffset ({r.TemplateOffset}) is negative.");
        if (r.Mode == ParallelMode.Dense && h != 1) throw new PlanException("hosts", $"dense runs on one host, not {h}.");
        if (r.Mode == ParallelMode.Ulysses) ValidateUlyssesHeads(r);
        bool hasAnchor = r.Mode is ParallelMode.Apb or ParallelMode.Star;
        if (r.Split == BlockSplit.Balanced && !hasAnchor) throw new PlanException("split", $"a cost-balanced split applies to apb and star, not {r.Mode}.");
        if (r.Split == BlockSplit.Balanced && r.PassAll) throw new PlanException("split", "passing all tokens needs equal blocks (l_p = l_b); drop the balanced split.");
        var split = r.Split ?? (hasAnchor && h > 1 && !r.PassAll ? BlockSplit.Balanced : BlockSplit.Equal);

        int chunks = r.Mode == ParallelMode.Ring ? 2 * h : h;
        int lb = (n + chunks - 1) / chunks * chunks / h;
        // Lossless passing hands every host all earlier tokens: an anchor would only repeat them (and host 0 must keep
        // all l_b tokens selectable), so it defaults to none.
        int la = r.AnchorLength ?? (r.PassAll ? 0 : (int?)null) ?? r.Mode switch
        {
            ParallelMode.Apb => Round(lb / Math.Max(1, r.AnchorDivisor), lb),
            ParallelMode.Star => lb,
            _ => 0,
        };
        int lp = r.PassAll ? lb : r.PassingLength ?? (r.Mode == ParallelMode.Apb ? Round(lb / 8, lb) : 0);
        // The default anchor holds the whole embedded question (short documents would otherwise cut it off,
        // leaving a query-aware compressor nothing to score with), as far as host 0 keeps l_p tokens to pass
        // beyond it (the first l_a positions are never selected).
        if (r.AnchorLength is null && r.Mode == ParallelMode.Apb && (r.EmbedQuestion ?? true) && !r.PassAll)
            la = Math.Max(la, Math.Min(lb - lp, r.TemplateOffset + r.QuestionLength));
        if (h == 1 && r.AnchorLength is null) la = 0; // one host: nothing to anchor

        if (la < 0) throw new PlanException("anchorLength", $"anchor length l_a ({la}) is negative.");
        if (lp < 0) throw new PlanException("passingLength", $"passing length l_p ({lp}) is negative.");
        if (!hasAnchor && la > 0) throw new PlanException("anchorLength", $"{r.Mode} has no anchor (l_a = {la}).");
        if (r.Mode != ParallelMode.Apb && lp > 0) throw new PlanException("passingLength", $"{r.Mode} passes nothing (l_p = {lp}).");
        if (la > lb) throw new PlanException("anchorLength", $"anchor length l_a ({la}) is longer than a block (l_b = {lb}).");

        var blocks = r.BlockLengths is { } given ? GivenBlocks(given, n, h, r.Mode)
            : split == BlockSplit.Balanced ? BalancedBlocks(n, h, la, lp, r.Cost ?? CostModel.Default)
            : EqualBlocks(n, h, lb);
        var plan = new ApbPlan
        {
            Mode = r.Mode, Hosts = h, DocumentLength = n, QuestionLength = r.QuestionLength,
            BlockLength = lb, AnchorLength = la, PassingLength = lp, Blocks = blocks,
            TemplateOffset = r.TemplateOffset, EmbedQuestion = r.EmbedQuestion ?? r.Mode == ParallelMode.Apb,
            Split = r.BlockLengths is null ? split : blocks.All(b => b.Length == lb) ? BlockSplit.Equal : BlockSplit.Balanced,
        };
        plan.ValidatePassing();
        return plan;
    }

    /// <summary>Rounds paper defaults to multiples of 64 on large blocks; tiny test blocks keep exact values.</summary>
    private static int Round(int value, int blockLength) => blockLength >= RoundAbove ? value / 64 * 64 : value;

    private static void ValidateUlyssesHeads(PlanRequest r)
    {
        if (r.NumHeads is not int hq || r.NumKvHeads is not int hkv)
            throw new PlanException("numHeads", "ulysses needs the model's head counts (numHeads, numKvHeads) to check they divide by the hosts.");
        if (hq % r.Hosts != 0) throw new PlanException("numHeads", $"ulysses needs query heads ({hq}) divisible by hosts ({r.Hosts}).");
        if (hkv % r.Hosts != 0) throw new PlanException("numKvHeads", $"ulysses needs key/value heads ({hkv}) divisible by hosts ({r.Hosts}).");
    }

    /// <summary>Every host that passes (0..H-2) must have l_p selectable tokens: its block less the first l_a positions.</summary>
    private void ValidatePassing()
    {
        if (PassingLength == 0) return;
        foreach (var b in Blocks.Take(Hosts - 1))
        {
            int selectable = b.Length - Math.Clamp(AnchorLength - b.Start, 0, b.Length);
            if (PassingLength > selectable)
                throw new PlanException("passingLength",
                    $"passing length l_p ({PassingLength}) is longer than host {b.Host}'s block ({b.Length} tokens, {selectable} selectable after the first l_a = {AnchorLength} positions).");
        }
    }

    /// <summary>Blocks another process planned (a router): they must cover the document, one non-empty block a host,
    /// and a ring's blocks must be its equal split (its zigzag chunks are cut from the padded length).</summary>
    private static List<HostBlock> GivenBlocks(IReadOnlyList<int> lengths, int n, int h, ParallelMode mode)
    {
        if (lengths.Count != h) throw new PlanException("blockLengths", $"{lengths.Count} block lengths for {h} hosts.");
        if (lengths.Any(l => l < 1)) throw new PlanException("blockLengths", $"every block needs at least one token (blocks [{string.Join(",", lengths)}]).");
        long total = lengths.Sum(l => (long)l);
        if (total < n) throw new PlanException("blockLengths", $"blocks [{string.Join(",", lengths)}] cover {total} tokens, the document has {n}.");
        if (mode == ParallelMode.Ring && total % (2 * h) != 0) throw new PlanException("blockLengths", $"a ring's padded length ({total}) must divide into {2 * h} chunks.");
        var blocks = new List<HostBlock>(h);
        for (int i = 0, start = 0; i < h; start += lengths[i], i++)
            blocks.Add(new HostBlock(i, start, lengths[i], Math.Clamp(start + lengths[i] - n, 0, lengths[i])));
        return blocks;
    }

    private static List<HostBlock> EqualBlocks(int n, int h, int lb) =>
        Enumerable.Range(0, h).Select(i => new HostBlock(i, i * lb, lb, Math.Clamp((i + 1) * lb - n, 0, lb))).ToList();

    /// <summary>
    /// Unequal blocks with about equal cost per host: binary search on the per-host budget, each host
    /// taking the longest block within it (later hosts carry longer passing blocks, host 0 no anchor).
    /// </summary>
    private static List<HostBlock> BalancedBlocks(int n, int h, int la, int lp, CostModel cost)
    {
        double Anchor(int i) => i == 0 ? 0 : la;
        int[] Lengths(double budget) => Enumerable.Range(0, h).Select(i => (int)Math.Floor(cost.MaxLocal(budget, Anchor(i), i * lp))).ToArray();
        double lo = 0, hi = cost.HostCost(n, la, (h - 1) * (double)lp);
        for (int it = 0; it < 100 && hi - lo > 1e-9 * hi; it++)
        {
            double mid = (lo + hi) / 2;
            if (Lengths(mid).Sum(x => (long)x) >= n) hi = mid; else lo = mid;
        }
        var len = Lengths(hi);
        // Minimum per host: one token, and l_p selectable tokens on the hosts that pass.
        var min = Enumerable.Range(0, h).Select(i => Math.Max(1, i < h - 1 ? lp + (i == 0 ? la : 0) : 1)).ToArray();
        if (min.Sum() > n)
            throw new PlanException("passingLength", $"a balanced split of {n} tokens over {h} hosts cannot give every passing host l_p = {lp} selectable tokens.");
        for (int i = 0; i < h; i++) len[i] = Math.Max(len[i], min[i]);
        if (n / h >= RoundAbove)
            for (int i = 0; i < h - 1; i++) len[i] = Math.Max(min[i], (len[i] + 32) / 64 * 64);
        // Give or take the difference to n on the hosts with the highest / lowest cost.
        double CostOf(int i, int l) => cost.HostCost(l, Anchor(i), i * lp);
        while (len.Sum() > n)
        {
            var i = Enumerable.Range(0, h).Where(j => len[j] > min[j]).MaxBy(j => CostOf(j, len[j]));
            len[i]--;
        }
        while (len.Sum() < n) len[Enumerable.Range(0, h).MinBy(j => CostOf(j, len[j] + 1))]++;
        var blocks = new List<HostBlock>(h);
        for (int i = 0, start = 0; i < h; start += len[i], i++) blocks.Add(new HostBlock(i, start, len[i], 0));
        return blocks;
    }
}
