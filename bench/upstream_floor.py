"""A lower bound for llm-compressor 0.9's time on the 3M Llama, per recipe, without llm-compressor.

llm-compressor cannot be installed on the development machines (no PyPI), so its per-recipe time
there cannot be measured. This script times, with numpy's OpenBLAS on the same machine, only the
matrix products and Cholesky factorizations that llm-compressor's own pipeline must run for a
recipe (and its weight observers' per-row min and max), and leaves out everything else: Python,
torch and transformers start-up, tokenization, model loading, norms, RoPE, softmax, SiLU,
activation observers, fake quantization, casts, copies, the losses, Python's per-op overhead and
saving. The real run therefore costs more than the figure printed: it
is a floor for upstream, not an estimate of it.

    OPENBLAS_NUM_THREADS=2 python3 bench/upstream_floor.py all [--batch-size 1] [--torch-import]
    OPENBLAS_NUM_THREADS=2 python3 bench/upstream_floor.py w4a16_gptq_channel [--direct]

Each recipe is a table of how many times upstream runs each unit of work (one layer's forward of
one batch, one layer's Hessian updates of one batch, one layer's solves, ...). Each unit is timed
on its own, best of `--repeats` timings of `--runs` runs, and the floor is the sum of count ×
unit time: taking each unit's best time (the units taking turns) keeps the figure a lower bound
on a machine shared with other jobs. `--direct` instead runs every counted unit once per count,
back to back, and times the whole (slower and noisier; a check that the sum adds up).

What upstream runs was read from llm-compressor 0.9.0 (tag 0.9.0, commit 129c793fdabf) and the
compressed-tensors it pins (0.13.0); paths below are in those trees.

Pipelines (src/llmcompressor/pipelines/). `oneshot`'s default pipeline is "independent"
(args/dataset_arguments.py, `pipeline = "independent"`): independent/pipeline.py runs every
modifier of the recipe, whatever its stage, on its own, with the pipeline
`CalibrationPipeline._infer_pipeline([modifier])` picks (registry.py): "datafree" for a lone
QuantizationModifier whose config needs no calibration data (`requires_calibration_data()` in
compressed-tensors quantization/quant_config.py: no static or "local" input activations, no KV
cache), otherwise "sequential" -- also for SmoothQuant, SparseGPT, QuIP and SpinQuant, which run a
whole sequential pass of their own. sequential/pipeline.py runs, per decoder layer, every batch
through the layer once with the modifiers' hooks (the calibration forward), fires
SEQUENTIAL_EPOCH_END (GPTQ/SparseGPT solve, AWQ and SmoothQuant smooth), then every batch through
the layer again with the hooks disabled (the propagation forward). `calibration_forward_context`
(utils/helpers.py) puts lm_head on the meta device, so no lm_head product. DatasetArguments'
default `batch_size` is 1: 64 batches of one 256-token sequence (`--batch-size` changes it).

Counted per layer forward (`forward`): q, k, v, o, gate, up, down and causal attention's half of the
score and value products (half of the heads stands in for the causal half; 8 query heads of 32,
the 4 key/value heads repeated).

Per recipe (L layers, N batches):

- fp8_dynamic, w4a16_rtn_channel: datafree pipeline (data_free/pipeline.py): no forward at all.
  Only the weight observation every quantizing recipe ends with (`observe_weights`: a per-row
  min and max of every Linear weight, QuantizationModifier.on_start → update_weight_zp_scale).
- fp8_static_kv_cache, nvfp4: one QuantizationModifier with static (FP8) or "local" (NVFP4)
  input activations, or a KV cache scheme → sequential: L·N·2 forwards; the activation and KV
  observers are elementwise (not counted).
- w4a16_gptq_channel, w4a16_gptq_actorder_group: GPTQModifier → sequential: per layer and batch
  the calibration forward plus one Hessian update per Linear (gptq/base.py `calibrate_module`
  keeps `self._hessians[module]` per module, so q, k and v each compute their own H += xᵀx on the
  same input, and gate and up theirs: gptq_quantize.py `accumulate_hessian`, a full
  `inp.matmul(inp.t())`), the propagation forward, and per layer the seven solves
  (`quantize_weight`: Cholesky, cholesky_inverse, Cholesky again and per 128-column block
  `Err1.matmul(Hinv[i1:i2, i2:])`; its per-column loop, with the rank-1
  `err1.unsqueeze(1).matmul(Hinv1[i, i:])`, is left out: see `solve`). Activation ordering only
  permutes (not counted).
- sparse_2of4_fp8: SparseGPTModifier → sequential, the same products as GPTQ's pass
  (sparsegpt/base.py `calibrate_module`, one H per Linear of each targeted layer;
  sgpt_sparsify.py `sparsify_weight` the same solve), then QuantizationModifier FP8_DYNAMIC alone
  → datafree.
- sparse_2of4_w4a16: SparseGPT's sequential pass, then GPTQ's own sequential pass: two passes.
- w8a8_smoothquant_gptq, w8a8_int8_static_asym: SmoothQuantModifier → sequential (its hooks take
  per-channel min/max of the norms' outputs, smoothquant/base.py `_setup_scale_hooks`, and
  SEQUENTIAL_EPOCH_END scales weights: elementwise), then GPTQ's pass (static asym activation
  observers elementwise).
- spinquant_w4a16_gptq: SpinQuantModifier (transform/spinquant/base.py) fuses R1 (hidden 256) and
  R2 (head 32) into the weights in float64 at its calibration start (compressed-tensors
  transform/factory/base.py `_apply_to_module`, location weight_input/weight_output:
  `transform(module.weight)`, a dense `_multihead_matmul` in transform/utils/matrix.py; embedding,
  q/k/v/gate/up inputs, o/down outputs, lm_head input; v output and o input per head), then runs
  its own sequential pass (no hooks, L·N·2 plain forwards), then GPTQ's pass.
- quip_w4a16_gptq: QuIPModifier (transform/quip/base.py, `precision` float64 by default) fuses
  random-Hadamard V (input side) and U (output side) into every Linear but lm_head in float64, and
  registers online transforms as plain torch hooks (`register_forward_pre_hook` /
  `register_forward_hook`, not llm-compressor's HooksMixin, so they run in calibration and
  propagation forwards alike): each Linear's input times the dense in × in matrix and its output
  times the dense out × out matrix, in float64 (HadamardTransform.forward casts the value to the
  matrix's dtype; `transform_block_size` None → full size). q, k and v each transform their own
  copy of the input. QuIP's own sequential pass, then GPTQ's pass, both with these products.
- w4a16_awq_asym: AWQModifier → sequential: calibration forward, then per layer at
  SEQUENTIAL_EPOCH_END, for each resolved mapping, `_run_samples(parent)` once for the reference
  output and once per grid point (`n_grid` 20, duo_scaling True: 20 points), every batch each
  time: awq/base.py `_apply_smoothing` / `_compute_best_scale`. Llama's mappings
  (awq/mappings.py `_default_mappings`) are input_layernorm → q/k/v (parent self_attn: the whole
  attention with o_proj), v_proj → o_proj (skipped here: `_check_layers_are_compatible` rejects it
  when v_proj's 128 outputs ≠ o_proj's 256 inputs), post_attention_layernorm → gate/up (parent
  mlp: gate, up and down) and up_proj → down_proj (parent down_proj). Then the propagation
  forward.

Shapes: hidden 256, intermediate 768, 8 heads of 32, 4 key/value heads, 4 layers, vocab 512;
64 × 256 calibration tokens.
"""
import argparse
import os
import resource
import subprocess
import time
from collections import Counter

import numpy as np
import scipy.linalg.blas as blas
import scipy.linalg.lapack as lapack

H, I, NH, NKV, HD, S, V = 256, 768, 8, 4, 32, 256, 512
SAMPLES = 64
LINEARS = dict(q=(H, H), k=(NKV * HD, H), v=(NKV * HD, H), o=(H, H), gate=(I, H), up=(I, H),
               down=(H, I))  # name: (out_features, in_features)
# Weight fusions, (rows, n): a (rows × n) float64 weight times an n × n transform. SpinQuant: R1
# on the embedding's and lm_head's 256 columns; per layer R1 on the inputs of q, k, v, gate, up
# and the outputs of o and down (transform × W), R2 per 32-wide head on v's outputs and o's inputs
# (v: 128 × 256 in 4 heads = 1024 rows of 32; o: 256 × 256 in 8 heads = 2048 rows of 32).
SPINQUANT_LAYER = [(LINEARS[n][0], H) for n in ("q", "k", "v", "gate", "up")] + [
    (H, H), (I, H), (NKV * HD * H // HD, HD), (H * H // HD, HD)]
SPINQUANT_EMBEDDINGS = [(V, H), (V, H)]
# QuIP: V on every Linear's input side (W·Vᵀ), U on its output side (Uᵀ·W): same product sizes.
QUIP_LAYER = [(out, inp) for out, inp in LINEARS.values()] + [
    (inp, out) for out, inp in LINEARS.values()]


class Operands:
    """Random operands of the shapes one batch of `batch` sequences has in one layer."""

    def __init__(self, batch):
        rng = np.random.default_rng(0)
        f32, t = np.float32, batch * S
        self.w = {n: rng.standard_normal(s, dtype=f32) * 0.02 for n, s in LINEARS.items()}
        self.x = rng.standard_normal((t, H), dtype=f32)    # q/k/v, o, gate/up input
        self.h = rng.standard_normal((t, I), dtype=f32)    # down input
        self.q = rng.standard_normal((batch, NH // 2, S, HD), dtype=f32)
        self.kt = rng.standard_normal((batch, NH // 2, HD, S), dtype=f32)
        self.p = rng.standard_normal((batch, NH // 2, S, S), dtype=f32)
        # float64 transforms (QuIP, SpinQuant): activations of every width, the dense matrices
        # and the weights they are fused into.
        self.x64 = {n: rng.standard_normal((t, n)) for n in (NKV * HD, H, I)}
        self.t64 = {n: rng.standard_normal((n, n)) for n in (HD, NKV * HD, H, I)}
        fusions = set(SPINQUANT_EMBEDDINGS + SPINQUANT_LAYER + QUIP_LAYER)
        self.fused = {s: rng.standard_normal(s) for s in fusions}
        self.hess = {n: (lambda a: a @ a.T + n * np.eye(n, dtype=f32))(
            rng.standard_normal((n, n), dtype=f32)) for n in (H, I)}
        self.err = {r: rng.standard_normal((r, 128), dtype=f32) for r in (NKV * HD, H, I)}


# Units of work: each takes the operands and runs the products of one occurrence.

def attention(p):
    """Self-attention of one batch: q, k, v, the causal half of scores and values, o."""
    x, w = p.x, p.w
    x @ w["q"].T; x @ w["k"].T; x @ w["v"].T; p.q @ p.kt; p.p @ p.q; x @ w["o"].T


def mlp(p):
    """The MLP of one batch: gate, up, down."""
    p.x @ p.w["gate"].T; p.x @ p.w["up"].T; p.h @ p.w["down"].T


def down(p):
    """down_proj alone on one batch (AWQ's up_proj → down_proj parent)."""
    p.h @ p.w["down"].T


def forward(p):
    """One decoder layer's forward of one batch (lm_head is on the meta device)."""
    attention(p); mlp(p)


def online(p):
    """QuIP's online V on every Linear's input and U on its output, float64, dense."""
    for out, inp in LINEARS.values():
        p.x64[inp] @ p.t64[inp]
        p.x64[out] @ p.t64[out]


def hessians(p):
    """H += xᵀx for each of the seven Linears (q, k, v share an input but not a Hessian)."""
    for _, inp in LINEARS.values():
        a = p.x if inp == H else p.h
        a.T @ a


def solve(p, rows, cols, block=128):
    """gptq_quantize.py quantize_weight / sgpt_sparsify.py sparsify_weight, products only.

    Counts the dampened Hessian's Cholesky, cholesky_inverse (LAPACK potri), the upper Cholesky
    of the inverse and the per-block error propagation `Err1.matmul(Hinv[i1:i2, i2:])`. Leaves out
    the per-column loop (quantize or prune a column, rank-1 update within the block): its products
    are small (rows × block²/2 per block) and its time is per-op overhead, which this script never
    counts.
    """
    # All in scipy's LAPACK and BLAS: numpy and scipy each bundle an OpenBLAS, and alternating
    # between their two thread pools on two cores costs several times the work itself.
    low, _ = lapack.spotrf(p.hess[cols], lower=1)   # torch.linalg.cholesky
    inv, _ = lapack.spotri(low, lower=1)            # torch.cholesky_inverse (lower half filled)
    hinv, _ = lapack.spotrf(inv, lower=1)           # torch.linalg.cholesky(upper=True): the same
    err = p.err[rows]                               # factor, read from the other half
    for i1 in range(block, cols, block):
        blas.sgemm(1.0, err, hinv[i1:, i1 - block:i1], trans_b=1)  # Err1 @ Hinv[i1:i2, i2:]


def solves(p):
    """One layer's seven GPTQ (or SparseGPT) solves."""
    for out, inp in LINEARS.values():
        solve(p, out, inp)


def fuse(p, pairs):
    for rows, n in pairs:
        p.fused[rows, n] @ p.t64[n]


def spinquant_layer(p):
    """SpinQuant's R1 and R2 fused into one layer's weights, float64."""
    fuse(p, SPINQUANT_LAYER)


def spinquant_embeddings(p):
    """SpinQuant's R1 fused into the embedding and lm_head, float64."""
    fuse(p, SPINQUANT_EMBEDDINGS)


def quip_layer(p):
    """QuIP's V and U fused into one layer's seven weights, float64."""
    fuse(p, QUIP_LAYER)


def observe_weights(p):
    """Per-row min and max of one layer's Linear weights (the weight observers)."""
    for w in p.w.values():
        w.min(axis=1); w.max(axis=1)


UNITS = [attention, mlp, down, forward, online, hessians, solves, spinquant_layer,
         spinquant_embeddings, quip_layer, observe_weights]
# Units on scipy's OpenBLAS rather than numpy's. After a call, an OpenBLAS pool's threads spin for
# a while before they sleep; on two cores a unit timed right after the other pool's work ran up to
# 3× slower (a numpy forward 8.7 ms instead of 2.7 ms after the solves), so the timings pause when
# they switch pools. torch runs everything on one pool, so upstream never pays this.
SCIPY_UNITS = {solves}
PARK_SECONDS = 0.3


# Passes, as counts of units for L layers and N batches.

def sequential_pass(L, N, hooks=(), in_every_forward=()):
    """sequential/pipeline.py: per layer, N calibration forwards (with the modifiers' `hooks`),
    then N propagation forwards; `in_every_forward` runs in both (QuIP's online transforms)."""
    counts = Counter({forward: 2 * L * N})
    for unit in in_every_forward:
        counts[unit] += 2 * L * N
    for hook in hooks:
        counts[hook] += L * N
    return counts


def gptq_pass(L, N, in_every_forward=()):
    """GPTQ's or SparseGPT's pass: its Hessian hooks in the calibration forwards, the solves at
    each layer's end."""
    return sequential_pass(L, N, [hessians], in_every_forward) + Counter({solves: L})


def awq_pass(L, N, grid=20):
    """AWQ's pass: per layer and mapping, the parent's reference output and `grid` candidates."""
    return sequential_pass(L, N) + Counter(
        {attention: (grid + 1) * L * N, mlp: (grid + 1) * L * N, down: (grid + 1) * L * N})


def weights(L):
    return Counter({observe_weights: L})


# One function per recipe in recipes/ (MoE ones aside), named after its file. Every one ends with
# the weight observation: every recipe quantizes its weights.

RECIPES = {}


def recipe(fn):
    RECIPES[fn.__name__] = fn
    return fn


@recipe
def fp8_dynamic(L, N):
    return weights(L)                                        # data-free


@recipe
def w4a16_rtn_channel(L, N):
    return weights(L)                                        # data-free


@recipe
def fp8_static_kv_cache(L, N):
    return sequential_pass(L, N) + weights(L)


@recipe
def nvfp4(L, N):
    return sequential_pass(L, N) + weights(L)


@recipe
def w4a16_gptq_channel(L, N):
    return gptq_pass(L, N) + weights(L)


@recipe
def w4a16_gptq_actorder_group(L, N):
    return gptq_pass(L, N) + weights(L)


@recipe
def sparse_2of4_fp8(L, N):
    return gptq_pass(L, N) + weights(L)                      # SparseGPT, then FP8 data-free


@recipe
def sparse_2of4_w4a16(L, N):
    return gptq_pass(L, N) + gptq_pass(L, N) + weights(L)    # SparseGPT's pass, then GPTQ's


@recipe
def w8a8_smoothquant_gptq(L, N):
    return sequential_pass(L, N) + gptq_pass(L, N) + weights(L)  # SmoothQuant's, then GPTQ's


@recipe
def w8a8_int8_static_asym(L, N):
    return sequential_pass(L, N) + gptq_pass(L, N) + weights(L)  # SmoothQuant's, then GPTQ's


@recipe
def spinquant_w4a16_gptq(L, N):
    fusion = Counter({spinquant_embeddings: 1, spinquant_layer: L})
    return fusion + sequential_pass(L, N) + gptq_pass(L, N) + weights(L)


@recipe
def quip_w4a16_gptq(L, N):
    fusion = Counter({quip_layer: L})
    quip_pass = sequential_pass(L, N, in_every_forward=[online])
    return fusion + quip_pass + gptq_pass(L, N, in_every_forward=[online]) + weights(L)


@recipe
def w4a16_awq_asym(L, N):
    return awq_pass(L, N) + weights(L)


def best_times(units, p, runs, repeats):
    """Per unit, the best of `repeats` timings of `runs` back-to-back runs, per run. The units
    take turns, so that each one's timings spread over the whole measurement and one busy moment
    of the shared machine does not spoil all of them."""
    best = {unit: float("inf") for unit in units}
    for unit in units:
        unit(p)
    previous = None
    for _ in range(repeats):
        for unit in units:
            if previous is not None and (unit in SCIPY_UNITS) != (previous in SCIPY_UNITS):
                time.sleep(PARK_SECONDS)  # let the other OpenBLAS pool's spinning threads park
            previous = unit
            start = time.perf_counter()
            for _ in range(runs):
                unit(p)
            best[unit] = min(best[unit], (time.perf_counter() - start) / runs)
    return best


def direct_time(counts, p):
    """The counted units back to back, each unit's runs in one stretch, pool switches excluded."""
    seconds = 0.0
    for unit, n in counts.items():
        time.sleep(PARK_SECONDS)
        start = time.perf_counter()
        for _ in range(n):
            unit(p)
        seconds += time.perf_counter() - start
    return seconds


def torch_import():
    """Wall and CPU seconds of `import torch` in Debian's /usr/bin/python3, if it has torch."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(["/usr/bin/python3", "-c", "import torch; print(torch.__version__)"],
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return (done.stdout.strip(), wall, cpu) if done.returncode == 0 else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("recipe", choices=["all", *RECIPES])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=1, help="llm-compressor's default: 1")
    parser.add_argument("--runs", type=int, default=8, help="runs of a unit per timing")
    parser.add_argument("--repeats", type=int, default=10, help="timings per unit (best kept)")
    parser.add_argument("--direct", action="store_true", help="run every counted unit instead")
    parser.add_argument("--units", action="store_true", help="print each unit's time too")
    parser.add_argument("--torch-import", action="store_true",
                        help="also time `import torch` (printed apart, not in any floor)")
    args = parser.parse_args()
    if SAMPLES % args.batch_size:
        parser.error(f"--batch-size must divide {SAMPLES}")
    p = Operands(args.batch_size)
    L, N = args.layers, SAMPLES // args.batch_size
    names = list(RECIPES) if args.recipe == "all" else [args.recipe]
    counts = {name: RECIPES[name](L, N) for name in names}
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "unset")
    print(f"floor of llm-compressor 0.9's products, {L} layers, {SAMPLES} × {S} tokens in batches "
          f"of {args.batch_size}; numpy {np.__version__}, OPENBLAS_NUM_THREADS={threads}, "
          + ("direct" if args.direct else f"best of {args.repeats} × {args.runs} runs per unit"))
    if args.direct:
        forward(p); online(p); solves(p)         # warm the BLAS threads and caches
        seconds = {name: direct_time(c, p) for name, c in counts.items()}
    else:
        needed = [u for u in UNITS if any(u in c for c in counts.values())]
        unit_s = best_times(needed, p, args.runs, args.repeats)
        if args.units:
            for u in needed:
                print(f"  unit {u.__name__:<22} {unit_s[u] * 1e3:9.3f} ms")
        seconds = {name: sum(n * unit_s[u] for u, n in c.items()) for name, c in counts.items()}
    print(f"{'recipe':<28} {'floor s':>8}")
    for name in names:
        print(f"{name:<28} {seconds[name]:8.2f}")
    if args.torch_import:
        found = torch_import()
        print("import torch (/usr/bin/python3, not in the floors; Debian's torch, not the torch "
              "llm-compressor 0.9 uses): " + (f"torch {found[0]}, {found[1]:.2f} s wall, "
                                              f"{found[2]:.2f} s CPU" if found else "not found"))


if __name__ == "__main__":
    main()
