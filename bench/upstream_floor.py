"""A lower bound for llm-compressor 0.9's time on the 3M Llama of the recipes table, without it.

llm-compressor cannot be installed on the development machines (no PyPI), so its per-recipe time
there cannot be measured. This script times only the matrix products its pipeline must run for a
recipe, with numpy's OpenBLAS in float32 on the same machine (torch's CPU GEMMs run at a similar
rate), and leaves out everything else: Python and torch start-up, tokenization, model loading,
norms, RoPE, softmax, SiLU, observers, fake quantization, the GPTQ solves, the losses and saving.
The real run therefore costs more than the figure printed.

    OPENBLAS_NUM_THREADS=2 python3 bench/upstream_floor.py [gptq|awq] [--layers 4]

- gptq: the sequential pipeline of `w4a16_gptq_channel.yaml` per layer and batch: the calibration
  forward (q, k, v, attention's causal half, o, gate, up, down), the Hessian updates H += xᵀx of the
  four Linear inputs (full products, as torch computes them) and the propagation forward.
- awq: `w4a16_awq_asym.yaml`'s 20-point grid: per layer, grid point and batch, the parent forwards
  upstream runs (self_attn for q/k/v, o_proj for v → o, mlp for gate/up, down_proj for up → down).

Shapes: hidden 256, intermediate 768, 8 heads of 32, 4 key/value heads, 4 layers; 64 × 256
calibration tokens in 8 batches of 8 sequences.
"""
import argparse
import os
import time

import numpy as np

parser = argparse.ArgumentParser()
parser.add_argument("recipe", choices=["gptq", "awq"])
parser.add_argument("--layers", type=int, default=4)
parser.add_argument("--grid", type=int, default=20)
args = parser.parse_args()

H, I, NH, NKV, HD, S, B, NB = 256, 768, 8, 4, 32, 256, 8, 8
rng = np.random.default_rng(0)
f32 = np.float32
shapes = dict(q=(H, H), k=(NKV * HD, H), v=(NKV * HD, H), o=(H, H), g=(I, H), u=(I, H), d=(H, I))
W = {n: rng.standard_normal(s, dtype=f32) * 0.02 for n, s in shapes.items()}
x = rng.standard_normal((B * S, H), dtype=f32)
h = rng.standard_normal((B * S, I), dtype=f32)
# Causal attention needs half of the score and value products: half the batch stands in for it.
qh = rng.standard_normal((B // 2, NH, S, HD), dtype=f32)
kh = rng.standard_normal((B // 2, NH, HD, S), dtype=f32)
p = rng.standard_normal((B // 2, NH, S, S), dtype=f32)


def attention():
    x @ W["q"].T; x @ W["k"].T; x @ W["v"].T; qh @ kh; p @ qh; x @ W["o"].T


def mlp():
    x @ W["g"].T; x @ W["u"].T; h @ W["d"].T


def gptq_batch():
    attention(); mlp()                      # calibration forward
    x.T @ x; x.T @ x; x.T @ x; h.T @ h      # Hessian updates (q/k/v, o, gate/up, down inputs)
    attention(); mlp()                      # propagation forward


def awq_batch():
    attention()                             # self_attn parent
    x @ W["o"].T                            # o_proj parent
    mlp()                                   # mlp parent
    h @ W["d"].T                            # down_proj parent


step, repeats = (gptq_batch, args.layers * NB) if args.recipe == "gptq" else (
    awq_batch, args.layers * args.grid * NB)
step()
start = time.perf_counter()
for _ in range(repeats):
    step()
seconds = time.perf_counter() - start
threads = os.environ.get("OPENBLAS_NUM_THREADS", "default")
print(f"{args.recipe}: {seconds:.2f} s of matrix products ({args.layers} layers; numpy "
      f"{np.__version__}, OPENBLAS_NUM_THREADS={threads})")
