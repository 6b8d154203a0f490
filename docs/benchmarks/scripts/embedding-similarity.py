#!/usr/bin/env python3
"""Mean and max pairwise cosine of the embedding rows of the 26 space-prefixed capitals (" A".." Z") and of 26
letter-pair tokens, from a demo model folder's bf16 model.safetensors (no torch needed).
Usage: embedding-similarity.py MODEL_DIR [TENSOR]   (TENSOR: model.embed_tokens.weight, or lm_head.weight of an untied model)"""
import json, math, os, random, struct, sys

d = sys.argv[1]
with open(os.path.join(d, 'model.safetensors'), 'rb') as f:
    n = struct.unpack('<Q', f.read(8))[0]
    header = json.loads(f.read(n))
    name = sys.argv[2] if len(sys.argv) > 2 else 'model.embed_tokens.weight'
    e = header[name]
    assert e['dtype'] == 'BF16', e['dtype']
    rows, cols = e['shape']
    f.seek(8 + n + e['data_offsets'][0])
    raw = f.read(rows * cols * 2)
vocab = json.load(open(os.path.join(d, 'tokenizer.json')))['model']['vocab']

def row(i):
    b = raw[i * cols * 2:(i + 1) * cols * 2]
    return [struct.unpack('<f', b'\x00\x00' + b[j:j + 2])[0] for j in range(0, len(b), 2)]

def cos(a, b):
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))

rng = random.Random(0)
groups = {
    'space-prefixed capitals': ['\u0120' + chr(65 + i) for i in range(26)],
    'letter pairs (26, seed 0)': [chr(65 + rng.randrange(26)) + chr(65 + rng.randrange(26)) for _ in range(26)],
}
for name, tokens in groups.items():
    r = [row(vocab[t]) for t in tokens]
    c = [cos(r[i], r[j]) for i in range(len(r)) for j in range(i + 1, len(r))]
    print(f"{name}: mean cosine {sum(c) / len(c):.3f}, max {max(c):.3f}")
