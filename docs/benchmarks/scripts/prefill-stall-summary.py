#!/usr/bin/env python3
"""The prefill-stall table: every `apb load --stall --out` file named stall-POLICY-*.json in OUT, pooled per policy.
Percentiles are nearest-rank, as apb load prints them. "after, max" is the largest gap once the arriving query's first
token was out (no prefill running): on a shared machine, the noise floor the "during" figures should be read against.
Usage: prefill-stall-summary.py OUT POLICY..."""
import glob, json, math, sys

def pct(values, p):
    v = sorted(values)
    return v[max(0, min(len(v) - 1, math.ceil(p * len(v)) - 1))] if v else float('nan')

out, policies = sys.argv[1], sys.argv[2:]
print('| policy | trials | gap before, p50 | during prefill, p50 | p95 | max | gaps during | after, max (noise floor) | arriving TTFT, p50 |')
print('|---|---:|---:|---:|---:|---:|---:|---:|---:|')
for policy in policies:
    trials = [t for f in sorted(glob.glob(f'{out}/stall-{policy}-*.json')) for t in json.load(open(f))['trials'] if t['error'] is None]
    gaps = {k: [g for t in trials for g in t[f'{k}_gaps_ms']] for k in ('before', 'during', 'after')}
    ttft = [t['arriving_ttft_ms'] for t in trials]
    print(f"| {policy} | {len(trials)} | {pct(gaps['before'], .5):.1f} ms | {pct(gaps['during'], .5):.1f} ms | {pct(gaps['during'], .95):.1f} ms "
          f"| {max(gaps['during'], default=float('nan')):.1f} ms | {len(gaps['during'])} | {max(gaps['after'], default=float('nan')):.1f} ms "
          f"| {pct(ttft, .5):.0f} ms |")
