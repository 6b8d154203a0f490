#!/usr/bin/env python3
"""Variable tracking, name by name: of the names an `apb eval` run should have written (dense rows), how many
have the right first letter and how many the right rest. Usage: vt-name-letters.py EVAL_DIR_OR_JSON [MODE]"""
import json, os, sys

path = sys.argv[1] if sys.argv[1].endswith('.json') else os.path.join(sys.argv[1], 'eval.json')
mode = sys.argv[2] if len(sys.argv) > 2 else 'dense'
rows = [r for r in json.load(open(path))['Rows'] if r['Task'] == 'variable-tracking' and r['Mode'] == mode]
names = first = rest = 0
for r in rows:
    written = [p.strip() for p in r['Prediction'].split(',')]
    for expected, got in zip(r['Expected'], written + [''] * len(r['Expected'])):
        names += 1
        first += got[:1] == expected[:1]
        rest += got[1:] == expected[1:]
print(f"{path} {mode}: {sum(r['Correct'] for r in rows)}/{len(rows)} samples right; "
      f"of {names} names, first letter right {first}, the rest right {rest}")
