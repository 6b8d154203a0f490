#!/usr/bin/env python3
"""Hugging Face transformers side of our GPU checks (runs on the device machine).

  make    --kind llama|qwen2|llama-3.1-8b --out DIR [--dtype float32|bfloat16]
          random checkpoint in HF layout (safetensors + config.json), seeded
  compare --model DIR --ours FILE --ids FILE --dtype float32|bfloat16 --steps N --out FILE
          HF logits / greedy tokens on the same ids vs ours (a safetensors file written by
          `apb logits`), prints and writes a JSON verdict
  bench   --lengths 32768,65536,131072 --decode-context 32768 --decode-steps 32 --out FILE
          Llama-3.1-8B shape, random bf16 weights, SDPA: prefill (last token's logits only)
          and per-token decode, with peak GPU memory
"""
import argparse, json, time, sys
import torch
from safetensors.torch import load_file
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

LLAMA_31_8B = dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                   num_key_value_heads=8, vocab_size=128256, max_position_embeddings=131072, rms_norm_eps=1e-5,
                   rope_theta=500000.0, bos_token_id=128000, eos_token_id=[128001, 128008, 128009],
                   rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                                     original_max_position_embeddings=8192), tie_word_embeddings=False)

TINY_LLAMA = dict(hidden_size=256, intermediate_size=512, num_hidden_layers=4, num_attention_heads=8,
                  num_key_value_heads=2, vocab_size=1024, max_position_embeddings=4096, rms_norm_eps=1e-5,
                  rope_theta=500000.0, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False,
                  rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                                    original_max_position_embeddings=512))

TINY_QWEN2 = dict(hidden_size=256, intermediate_size=512, num_hidden_layers=4, num_attention_heads=8,
                  num_key_value_heads=1, vocab_size=1024, max_position_embeddings=4096, rms_norm_eps=1e-6,
                  rope_theta=1000000.0, bos_token_id=1, eos_token_id=2, tie_word_embeddings=True)


def build(kind, dtype, seed=1234):
    torch.manual_seed(seed)
    if kind == "qwen2":
        cfg, cls = Qwen2Config(**TINY_QWEN2), Qwen2ForCausalLM
    else:
        cfg, cls = LlamaConfig(**(LLAMA_31_8B if kind == "llama-3.1-8b" else TINY_LLAMA)), LlamaForCausalLM
    cfg.initializer_range = 0.02 if kind == "llama-3.1-8b" else 0.2  # larger weights: logits that mean something
    with torch.device("cuda"):
        model = cls(cfg).to(dtype)
    with torch.no_grad():  # HF inits norms to 1; perturb them so the test sees their effect
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


def cmd_make(a):
    dtype = getattr(torch, a.dtype)
    model = build(a.kind, dtype)
    model.save_pretrained(a.out, safe_serialization=True, max_shard_size="5GB")
    print(json.dumps({"made": a.kind, "dir": a.out, "dtype": a.dtype}))


def rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def cmd_compare(a):
    dtype = getattr(torch, a.dtype)
    cls = Qwen2ForCausalLM if "qwen2" in open(f"{a.model}/config.json").read() else LlamaForCausalLM
    model = cls.from_pretrained(a.model, torch_dtype=dtype, attn_implementation="sdpa").cuda().eval()
    ids = [int(x) for x in open(a.ids).read().split(",")]
    ours = load_file(a.ours)
    x = torch.tensor([ids], device="cuda")
    with torch.no_grad():
        ref = model(x).logits[0].float()
    mine = ours["logits"].cuda().float()
    err = rel_err(mine, ref)
    res = {"model": a.model, "dtype": a.dtype, "tokens": len(ids), "logits_rel_err": err,
           "limit": 1e-4 if a.dtype == "float32" else 2e-2}
    if a.steps > 0:
        with torch.no_grad():
            gen = model.generate(x, max_new_tokens=a.steps, min_new_tokens=a.steps, do_sample=False,
                                 eos_token_id=None, pad_token_id=0)
        hf_tokens = gen[0, len(ids):].tolist()
        our_tokens = ours["greedy"].tolist() if "greedy" in ours else []
        same = sum(1 for p, q in zip(hf_tokens, our_tokens) if p == q)
        first_diff = next((i for i, (p, q) in enumerate(zip(hf_tokens, our_tokens)) if p != q), None)
        res.update(hf_greedy=hf_tokens, our_greedy=our_tokens, greedy_equal_prefix=first_diff if first_diff is not None else len(our_tokens),
                   greedy_all_equal=(hf_tokens == our_tokens))
    res["pass"] = err <= res["limit"] and res.get("greedy_all_equal", True)
    print(json.dumps(res))
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)


def timed(fn):
    torch.cuda.synchronize(); t = time.perf_counter(); r = fn(); torch.cuda.synchronize()
    return r, time.perf_counter() - t


def cmd_bench(a):
    model = build("llama-3.1-8b", torch.bfloat16)
    model.config._attn_implementation = "sdpa"
    out = {"engine": "hf-transformers-sdpa", "gpu": torch.cuda.get_device_name(), "torch": torch.__version__,
           "prefill": [], "decode": None}
    for n in [int(x) for x in a.lengths.split(",")]:
        ids = torch.randint(0, 128000, (1, n), device="cuda")
        times = []
        for rep in range(a.reps + 1):
            torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()
            with torch.no_grad():
                _, t = timed(lambda: model(ids, use_cache=False, logits_to_keep=1))
            if rep > 0 or a.reps == 0:
                times.append(t)
        peak = torch.cuda.max_memory_allocated() / 2**30
        row = {"tokens": n, "seconds": min(times), "all_seconds": times, "tokens_per_s": n / min(times), "peak_gib": peak}
        print(json.dumps(row), flush=True)
        out["prefill"].append(row)
    n = a.decode_context
    ids = torch.randint(0, 128000, (1, n), device="cuda")
    with torch.no_grad():
        r = model(ids, use_cache=True, logits_to_keep=1)
        cache, tok = r.past_key_values, r.logits[:, -1:].argmax(-1)
        step_times = []
        for i in range(a.decode_steps):
            r, t = timed(lambda: model(tok, past_key_values=cache, use_cache=True))
            cache, tok = r.past_key_values, r.logits[:, -1:].argmax(-1)
            step_times.append(t)
    warm = step_times[3:] if len(step_times) > 4 else step_times
    out["decode"] = {"context": n, "steps": a.decode_steps, "ms_per_token_median": 1000 * sorted(warm)[len(warm) // 2],
                     "ms_per_token_mean": 1000 * sum(warm) / len(warm)}
    print(json.dumps(out["decode"]), flush=True)
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make"); m.add_argument("--kind", required=True); m.add_argument("--out", required=True)
    m.add_argument("--dtype", default="float32")
    c = sub.add_parser("compare")
    for k in ("--model", "--ours", "--ids", "--out"): c.add_argument(k, required=True)
    c.add_argument("--dtype", default="float32"); c.add_argument("--steps", type=int, default=0)
    b = sub.add_parser("bench"); b.add_argument("--lengths", default="32768,65536,131072")
    b.add_argument("--decode-context", type=int, default=32768); b.add_argument("--decode-steps", type=int, default=32)
    b.add_argument("--reps", type=int, default=2); b.add_argument("--out", required=True)
    a = p.parse_args()
    {"make": cmd_make, "compare": cmd_compare, "bench": cmd_bench}[a.cmd](a)
