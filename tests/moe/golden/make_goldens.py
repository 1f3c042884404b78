#!/usr/bin/env python3
"""Golden logits for llmc's MoE forward, computed by transformers itself.

For each case in tests/moe/golden/_specs.ts this script
  1. has Deno write the seeded synthetic checkpoint (write_checkpoints.ts),
  2. builds transformers' own MixtralForCausalLM / Qwen2MoeForCausalLM /
     Qwen3MoeForCausalLM from that config.json (eager attention, float32),
  3. loads model.safetensors into it (read here with numpy + json, strict),
  4. runs the fixed token ids and writes the logits as little-endian float32
     to <case>.f32, plus goldens.json: the producing versions, each case's
     checkpoint SHA-256 (so the test can tell a changed generator from a
     forward bug), the ids, the smallest router margin (the gap between the
     k-th and (k+1)-th routing probability: top-k cannot flip under f32
     rounding when it is large) and the float64-vs-float32 logit difference.

Usage (from the repository root; needs torch and transformers importable):
    python3 tests/moe/golden/make_goldens.py [--out tests/moe/golden]

See README.md beside this file for the exact environment that produced the
committed files.
"""

import argparse
import hashlib
import json
import os
import platform
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))

SAFETENSORS_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64}


def read_safetensors(path):
    """name -> float32 torch tensor, from the safetensors layout: u64 LE header length, JSON header, data."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = SAFETENSORS_DTYPES[info["dtype"]]
        start, end = info["data_offsets"]
        a = np.frombuffer(blob, dtype=dtype, count=(end - start) // np.dtype(dtype).itemsize, offset=base + start)
        out[name] = torch.from_numpy(a.reshape(info["shape"]).astype(np.float32))
    return out


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def build_model(ckpt_dir, dtype):
    config = AutoConfig.from_pretrained(ckpt_dir)
    config._attn_implementation = "eager"
    model = AutoModelForCausalLM.from_config(config, torch_dtype=dtype, attn_implementation="eager")
    state = {k: v.to(dtype) for k, v in read_safetensors(os.path.join(ckpt_dir, "model.safetensors")).items()}
    # strict: every parameter of transformers' model comes from the checkpoint and nothing is left over.
    model.load_state_dict(state, strict=True)
    return model.eval(), config


def run_case(name, ckpt_dir):
    with open(os.path.join(ckpt_dir, "ids.json")) as f:
        spec = json.load(f)
    batch, seq = spec["batch"], spec["seq"]
    ids = torch.tensor(spec["ids"], dtype=torch.long).reshape(batch, seq)
    results = {}
    for dtype in (torch.float32, torch.float64):
        model, config = build_model(ckpt_dir, dtype)
        # The routers' logits, caught on the way (output_router_logits=True trips over
        # the dense layers' None entries in 4.51.3's load-balancing loss).
        router_logits = []
        for module_name, module in model.named_modules():
            if module_name.endswith(("mlp.gate", "block_sparse_moe.gate")):
                module.register_forward_hook(lambda _m, _inp, out: router_logits.append(out.detach()))
        with torch.no_grad():
            out = model(input_ids=ids, use_cache=False)
        results[dtype] = (out, model, config, router_logits)
    out32, model32, config, routers32 = results[torch.float32]
    out64 = results[torch.float64][0]
    logits = out32.logits.reshape(-1).numpy().astype("<f4")
    l64 = out64.logits.reshape(-1).numpy()
    rel64 = float(np.max(np.abs(logits.astype(np.float64) - l64)) / np.max(np.abs(l64)))
    top_k = config.num_experts_per_tok
    margins = []
    for router_logits in routers32:
        p = torch.softmax(router_logits.double(), dim=-1).sort(dim=-1, descending=True).values
        margins.append(float((p[:, top_k - 1] - p[:, top_k]).min()))
    # Goldens must not depend on how top-k breaks near-ties: f32 rounding is ~1e-7.
    if margins and min(margins) < 1e-5:
        raise SystemExit(f"{name}: router margin {min(margins):.2e} is too small for a golden; change the seed")
    return {
        "model_type": config.model_type,
        "architecture": type(model32).__name__,
        "config_sha256": sha256(os.path.join(ckpt_dir, "config.json")),
        "safetensors_sha256": sha256(os.path.join(ckpt_dir, "model.safetensors")),
        "batch": batch,
        "seq": seq,
        "vocab": config.vocab_size,
        "ids": spec["ids"],
        "sparse_layers_seen": len(margins),
        "min_router_margin": min(margins) if margins else None,
        "float64_vs_float32_rel": rel64,
    }, logits


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=HERE, help="where the .f32 files and goldens.json go")
    ap.add_argument("--environment", default="", help="free text recorded in goldens.json: where torch/transformers came from")
    ap.add_argument("--deno", default=os.path.join(ROOT, "node_modules", ".bin", "deno"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(0)  # nothing random is used; weights all come from the checkpoint
    with tempfile.TemporaryDirectory(prefix="llmc_moe_golden_") as tmp:
        subprocess.run(
            [args.deno, "run", "-A", os.path.join(HERE, "write_checkpoints.ts"), tmp],
            check=True,
            cwd=ROOT,
        )
        cases = {}
        for name in sorted(os.listdir(tmp)):
            meta, logits = run_case(name, os.path.join(tmp, name))
            meta["file"] = f"{name}.f32"
            with open(os.path.join(args.out, meta["file"]), "wb") as f:
                f.write(logits.tobytes())
            cases[name] = meta
            print(
                f"{name}: {meta['architecture']} logits {meta['batch']}x{meta['seq']}x{meta['vocab']}, "
                f"min router margin {meta['min_router_margin']}, f64 vs f32 {meta['float64_vs_float32_rel']:.2e}"
            )
    manifest = {
        "produced_by": {
            "script": "tests/moe/golden/make_goldens.py",
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
            "platform": platform.platform(),
            "dtype": "float32, eager attention, use_cache=False",
            "environment": args.environment,
        },
        "cases": cases,
    }
    with open(os.path.join(args.out, "goldens.json"), "w") as f:
        json.dump(manifest, f, indent=2)  # deno fmt's layout
        f.write("\n")


if __name__ == "__main__":
    main()
