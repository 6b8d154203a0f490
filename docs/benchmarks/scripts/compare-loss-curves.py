#!/usr/bin/env python3
"""Do two training runs of one recipe and seed give the same loss curve, within noise?

Reads two `apb train demo-model --log` CSVs, aligns them by step and compares them window by window: the difference
of the windows' mean losses against the noise of those means (a step's noise, from step-to-step differences in
both runs, / sqrt(steps)). Prints one line per window and a verdict; exits 1 when the curves differ beyond noise.
  python3 compare-loss-curves.py A.csv B.csv [--window 100] [--sigmas 3] [--share 0.95]
Standard library only, so it runs wherever the CSVs are.
"""
import argparse
import csv
import math
import sys


def losses(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "loss" not in rows[0]:
        sys.exit(f"{path}: not a training log (no 'loss' column)")
    return {int(r["step"]): float(r["loss"]) for r in rows}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--window", type=int, default=100, help="steps per window (100)")
    ap.add_argument("--sigmas", type=float, default=3.0, help="a window differs when |diff| > this many standard errors (3)")
    ap.add_argument("--share", type=float, default=0.95, help="share of windows that must agree for 'within noise' (0.95)")
    o = ap.parse_args()
    a, b = losses(o.a), losses(o.b)
    steps = sorted(set(a) & set(b))
    if len(steps) < o.window:
        sys.exit(f"only {len(steps)} common steps; need at least one window of {o.window}")
    if len(set(a)) != len(set(b)):
        print(f"note: the runs logged {len(a)} and {len(b)} steps; comparing the {len(steps)} they share")
    identical = all(a[s] == b[s] for s in steps)
    agree = 0
    windows = [steps[i:i + o.window] for i in range(0, len(steps) - o.window + 1, o.window)]
    print(f"{'steps':>13} {'mean A':>8} {'mean B':>8} {'diff':>8} {'s.e.':>7} {'diff/s.e.':>9}")
    for w in windows:
        xa, xb = [a[s] for s in w], [b[s] for s in w]
        ma, mb = sum(xa) / len(w), sum(xb) / len(w)
        # A step's noise from step-to-step differences (a trend inside the window would inflate a plain variance),
        # then the standard error of the difference of the two windows' means.
        var = sum((x[i + 1] - x[i]) ** 2 for x in (xa, xb) for i in range(len(w) - 1)) / (4 * (len(w) - 1))
        se = math.sqrt(2 * var / len(w))
        z = abs(ma - mb) / se if se > 0 else (0.0 if ma == mb else math.inf)
        agree += z <= o.sigmas
        print(f"{w[0]:>6}-{w[-1]:<6} {ma:8.4f} {mb:8.4f} {ma - mb:+8.4f} {se:7.4f} {z:9.2f}")
    share = agree / len(windows)
    verdict = "identical, step for step" if identical else (
        "within noise" if share >= o.share else "NOT within noise")
    print(f"{len(windows)} windows of {o.window} steps: {agree} within {o.sigmas:g} standard errors ({share:.0%}); "
          f"final-window losses {sum(a[s] for s in windows[-1]) / o.window:.4f} vs {sum(b[s] for s in windows[-1]) / o.window:.4f}: {verdict}")
    return 0 if identical or share >= o.share else 1


if __name__ == "__main__":
    sys.exit(main())
