"""A lower bound for llm-compressor 0.9's time on a small Llama, per recipe, without llm-compressor.

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
    OPENBLAS_NUM_THREADS=2 python3 bench/upstream_floor.py all --model 76m [--samples 256]
    OPENBLAS_NUM_THREADS=2 python3 bench/upstream_floor.py all --hidden 512 --layers 8 ...

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
default `batch_size` is 1: one batch per calibration sequence (`--batch-size` changes it).

Counted per layer forward (`forward`): q, k, v, o, gate, up, down and causal attention's half of the
score and value products (half of the heads stands in for the causal half; the query heads of
hidden/heads each, the key/value heads repeated to match).

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
- spinquant_w4a16_gptq: SpinQuantModifier (transform/spinquant/base.py) fuses R1 (hidden) and R2
  (head dim) into the weights in float64 at its calibration start (compressed-tensors
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
  attention with o_proj), v_proj → o_proj (parent o_proj; `_check_layers_are_compatible` skips
  it when v_proj's outputs ≠ o_proj's inputs, i.e. with fewer key/value heads than heads, as in
  every preset), post_attention_layernorm → gate/up (parent mlp: gate, up and down) and
  up_proj → down_proj (parent down_proj). Then the propagation forward.

Shapes. `--model` picks a preset and `--hidden`, `--intermediate`, `--layers`, `--heads` (query
heads, each hidden/heads wide), `--kv-heads` and `--vocab` (read only by SpinQuant's embedding and
lm_head fusions) override it; `--samples` calibration sequences of `--seq-len` tokens. Presets:
3m (the default: hidden 256, intermediate 768, 4 layers, 8 heads, 4 KV heads, vocab 512), 13m
(768, 2048, 2 layers, 12 heads, 4 KV heads, vocab 512), 76m (13m with 12 layers) and stories260k
(64, 172, 5 layers, 8 heads, 4 KV heads, vocab 512); default calibration 64 × 256 tokens.
Some recipes cannot run on every shape, and the table then says why instead of printing a floor
for a run upstream would refuse: recipes/spinquant_w4a16_gptq.yaml's `transform_type: hadamard` is
Sylvester's construction, powers of two only, for R1 (hidden) and R2 (head dim)
(compressed-tensors transform/utils/hadamard.py `deterministic_hadamard_matrix`); QuIP's
`random-hadamard` needs every Linear's in and out width to be a power of two times one of the
orders stored in hadamards.safetensors (1, 2 and the multiples of 4 up to 256:
`_fetch_hadamard_divisor`); group quantization's groups must divide every in_features of a
group or more (quantization/lifecycle/forward.py `_process_quantization` raises, e.g. on
stories260k's down_proj, 172 wide): groups of 128 for w4a16_gptq_actorder_group and
w4a16_awq_asym (W4A16_ASYM), of 16 for nvfp4 (tensor_group). GPTQ's 128-column blocks need no such care: the last
block of a Linear, however narrow, has no columns to its right to update.
"""
import argparse
import os
import resource
import subprocess
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np
import scipy.linalg.blas as blas
import scipy.linalg.lapack as lapack


@dataclass(frozen=True)
class Shape:
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int

    @property
    def head_dim(self):
        return self.hidden // self.heads

    def linears(self):
        """name: (out_features, in_features)."""
        h, i, kv = self.hidden, self.intermediate, self.kv_heads * self.head_dim
        return dict(q=(h, h), k=(kv, h), v=(kv, h), o=(h, h), gate=(i, h), up=(i, h), down=(h, i))

    def spinquant_layer(self):
        """Weight fusions, (rows, n): a (rows × n) float64 weight times an n × n transform. Per
        layer R1 on the inputs of q, k, v, gate, up and the outputs of o and down (transform × W,
        the same product as W's in_features rows of n), R2 per head_dim-wide head on v's outputs
        (kv_heads blocks of head_dim × hidden: kv_heads · hidden rows) and o's inputs (heads ·
        hidden rows)."""
        lin, h, hd = self.linears(), self.hidden, self.head_dim
        return [(lin[n][0], h) for n in ("q", "k", "v", "gate", "up")] + [
            (lin["o"][1], h), (lin["down"][1], h), (self.kv_heads * h, hd), (self.heads * h, hd)]

    def spinquant_embeddings(self):
        """R1 on the embedding's and lm_head's hidden columns."""
        return [(self.vocab, self.hidden), (self.vocab, self.hidden)]

    def quip_layer(self):
        """V on every Linear's input side (W·Vᵀ), U on its output side (Uᵀ·W)."""
        lin = self.linears().values()
        return [(out, inp) for out, inp in lin] + [(inp, out) for out, inp in lin]

    def describe(self):
        return (f"hidden {self.hidden}, intermediate {self.intermediate}, {self.layers} layers, "
                f"{self.heads} heads of {self.head_dim}, {self.kv_heads} KV heads, "
                f"vocab {self.vocab}")


PRESETS = {
    "3m": Shape(hidden=256, intermediate=768, layers=4, heads=8, kv_heads=4, vocab=512),
    "13m": Shape(hidden=768, intermediate=2048, layers=2, heads=12, kv_heads=4, vocab=512),
    "76m": Shape(hidden=768, intermediate=2048, layers=12, heads=12, kv_heads=4, vocab=512),
    "stories260k": Shape(hidden=64, intermediate=172, layers=5, heads=8, kv_heads=4, vocab=512),
}
SAMPLES, SEQ_LEN = 64, 256


class Unsupported(Exception):
    """Upstream would refuse this recipe on this shape; the message says why."""


def is_pow2(n):
    return n > 0 and n & (n - 1) == 0


# The orders of hadamards.safetensors in compressed-tensors 0.13.0 (read from its header).
HADAMARD_ORDERS = [1, 2, *range(4, 257, 4)]


def need_sylvester(s):
    bad = [f"{what} {n}" for what, n in (("hidden", s.hidden), ("head dim", s.head_dim))
           if not is_pow2(n)]
    if bad:
        raise Unsupported("SpinQuant's hadamard rotations need powers of two, not "
                          + " and ".join(bad))


def need_random_hadamard(s):
    bad = sorted({n for shape in s.linears().values() for n in shape
                  if not any(n % k == 0 and is_pow2(n // k) for k in HADAMARD_ORDERS)})
    if bad:
        raise Unsupported("QuIP's random-hadamard needs 2^k × (1, 2 or a multiple of 4 up to 256) "
                          f"wide Linears, not {', '.join(map(str, bad))}")


def need_groups(s, group=128):
    bad = sorted({inp for _, inp in s.linears().values() if inp >= group and inp % group})
    if bad:
        raise Unsupported(f"group-{group} quantization needs in_features that are multiples of "
                          f"{group} (or under {group}), not {', '.join(map(str, bad))}")


class Operands:
    """Random operands of the shapes one batch of `batch` sequences has in one layer."""

    def __init__(self, s, batch, seq_len):
        rng = np.random.default_rng(0)
        f32, t, S = np.float32, batch * seq_len, seq_len
        H, I, NH, HD = s.hidden, s.intermediate, s.heads, s.head_dim
        KV = s.kv_heads * HD
        self.linears = s.linears()
        self.spinquant_layer, self.spinquant_embeddings = (
            s.spinquant_layer(), s.spinquant_embeddings())
        self.quip_layer = s.quip_layer()
        self.w = {n: rng.standard_normal(sh, dtype=f32) * 0.02 for n, sh in self.linears.items()}
        x = rng.standard_normal((t, H), dtype=f32)         # q/k/v, o, gate/up input
        h = rng.standard_normal((t, I), dtype=f32)         # down input
        self.act = {I: h, H: x}
        # Causal attention: half of the heads stands in for the causal half of every head (a
        # floor where the head count is odd).
        self.q = rng.standard_normal((batch, NH // 2, S, HD), dtype=f32)
        self.kt = rng.standard_normal((batch, NH // 2, HD, S), dtype=f32)
        self.p = rng.standard_normal((batch, NH // 2, S, S), dtype=f32)
        # float64 transforms (QuIP, SpinQuant): activations of every width, the dense matrices
        # and the weights they are fused into.
        self.x64 = {n: rng.standard_normal((t, n)) for n in (KV, H, I)}
        self.t64 = {n: rng.standard_normal((n, n)) for n in (HD, KV, H, I)}
        fusions = set(self.spinquant_embeddings + self.spinquant_layer + self.quip_layer)
        self.fused = {sh: rng.standard_normal(sh) for sh in fusions}
        self.hess = {n: (lambda a: a @ a.T + n * np.eye(n, dtype=f32))(
            rng.standard_normal((n, n), dtype=f32)) for n in (H, I)}
        self.err = {r: rng.standard_normal((r, 128), dtype=f32) for r in (KV, H, I)}


# Units of work: each takes the operands and runs the products of one occurrence.

def attention(p):
    """Self-attention of one batch: q, k, v, the causal half of scores and values, o."""
    x, w = p.act[p.linears["q"][1]], p.w
    x @ w["q"].T; x @ w["k"].T; x @ w["v"].T; p.q @ p.kt; p.p @ p.q; x @ w["o"].T


def mlp(p):
    """The MLP of one batch: gate, up, down."""
    x, h = p.act[p.linears["gate"][1]], p.act[p.linears["down"][1]]
    x @ p.w["gate"].T; x @ p.w["up"].T; h @ p.w["down"].T


def down(p):
    """down_proj alone on one batch (AWQ's up_proj → down_proj parent)."""
    p.act[p.linears["down"][1]] @ p.w["down"].T


def o_proj(p):
    """o_proj alone on one batch (AWQ's v_proj → o_proj parent, where the widths match)."""
    p.act[p.linears["o"][1]] @ p.w["o"].T


def forward(p):
    """One decoder layer's forward of one batch (lm_head is on the meta device)."""
    attention(p); mlp(p)


def online(p):
    """QuIP's online V on every Linear's input and U on its output, float64, dense."""
    for out, inp in p.linears.values():
        p.x64[inp] @ p.t64[inp]
        p.x64[out] @ p.t64[out]


def hessians(p):
    """H += xᵀx for each of the seven Linears (q, k, v share an input but not a Hessian)."""
    for _, inp in p.linears.values():
        a = p.act[inp]
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
    for out, inp in p.linears.values():
        solve(p, out, inp)


def fuse(p, pairs):
    for rows, n in pairs:
        p.fused[rows, n] @ p.t64[n]


def spinquant_layer(p):
    """SpinQuant's R1 and R2 fused into one layer's weights, float64."""
    fuse(p, p.spinquant_layer)


def spinquant_embeddings(p):
    """SpinQuant's R1 fused into the embedding and lm_head, float64."""
    fuse(p, p.spinquant_embeddings)


def quip_layer(p):
    """QuIP's V and U fused into one layer's seven weights, float64."""
    fuse(p, p.quip_layer)


def observe_weights(p):
    """Per-row min and max of one layer's Linear weights (the weight observers)."""
    for w in p.w.values():
        w.min(axis=1); w.max(axis=1)


UNITS = [attention, mlp, down, o_proj, forward, online, hessians, solves, spinquant_layer,
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


def awq_pass(L, N, v_to_o, grid=20):
    """AWQ's pass: per layer and mapping, the parent's reference output and `grid` candidates;
    `v_to_o` where v_proj → o_proj is a mapping (its parent o_proj)."""
    parents = [attention, mlp, down] + ([o_proj] if v_to_o else [])
    return sequential_pass(L, N) + Counter({u: (grid + 1) * L * N for u in parents})


def weights(L):
    return Counter({observe_weights: L})


# One function per recipe in recipes/ (MoE ones aside), named after its file, taking the shape
# and the batch count. Every one ends with the weight observation: every recipe quantizes its
# weights. One that upstream would refuse on the shape raises Unsupported.

RECIPES = {}


def recipe(fn):
    RECIPES[fn.__name__] = fn
    return fn


@recipe
def fp8_dynamic(s, N):
    return weights(s.layers)                                 # data-free


@recipe
def w4a16_rtn_channel(s, N):
    return weights(s.layers)                                 # data-free


@recipe
def fp8_static_kv_cache(s, N):
    return sequential_pass(s.layers, N) + weights(s.layers)


@recipe
def nvfp4(s, N):
    need_groups(s, 16)  # NVFP4 is tensor_group with groups of 16
    return sequential_pass(s.layers, N) + weights(s.layers)


@recipe
def w4a16_gptq_channel(s, N):
    return gptq_pass(s.layers, N) + weights(s.layers)


@recipe
def w4a16_gptq_actorder_group(s, N):
    need_groups(s)
    return gptq_pass(s.layers, N) + weights(s.layers)


@recipe
def sparse_2of4_fp8(s, N):
    L = s.layers
    return gptq_pass(L, N) + weights(L)                      # SparseGPT, then FP8 data-free


@recipe
def sparse_2of4_w4a16(s, N):
    L = s.layers
    return gptq_pass(L, N) + gptq_pass(L, N) + weights(L)    # SparseGPT's pass, then GPTQ's


@recipe
def w8a8_smoothquant_gptq(s, N):
    L = s.layers
    return sequential_pass(L, N) + gptq_pass(L, N) + weights(L)  # SmoothQuant's, then GPTQ's


@recipe
def w8a8_int8_static_asym(s, N):
    L = s.layers
    return sequential_pass(L, N) + gptq_pass(L, N) + weights(L)  # SmoothQuant's, then GPTQ's


@recipe
def spinquant_w4a16_gptq(s, N):
    need_sylvester(s)
    L = s.layers
    fusion = Counter({spinquant_embeddings: 1, spinquant_layer: L})
    return fusion + sequential_pass(L, N) + gptq_pass(L, N) + weights(L)


@recipe
def quip_w4a16_gptq(s, N):
    need_random_hadamard(s)
    L = s.layers
    fusion = Counter({quip_layer: L})
    quip_pass = sequential_pass(L, N, in_every_forward=[online])
    return fusion + quip_pass + gptq_pass(L, N, in_every_forward=[online]) + weights(L)


@recipe
def w4a16_awq_asym(s, N):
    need_groups(s)  # W4A16_ASYM: groups of 128
    lin = s.linears()
    # awq/base.py `_check_layers_are_compatible`: v_proj's outputs must match o_proj's inputs
    return awq_pass(s.layers, N, v_to_o=lin["v"][0] == lin["o"][1]) + weights(s.layers)


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


def positive(text):
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return n


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("recipe", choices=["all", *RECIPES])
    parser.add_argument("--model", choices=PRESETS, default="3m",
                        help="shape preset (default 3m); the options below override it")
    shape_options = dict(hidden="hidden size", intermediate="MLP intermediate size",
                         layers="decoder layers", heads="attention (query) heads",
                         kv_heads="key/value heads", vocab="vocabulary size")
    for field, what in shape_options.items():
        parser.add_argument("--" + field.replace("_", "-"), type=positive, help=what)
    parser.add_argument("--samples", type=positive, default=SAMPLES,
                        help=f"calibration sequences (default {SAMPLES})")
    parser.add_argument("--seq-len", type=positive, default=SEQ_LEN,
                        help=f"tokens per sequence (default {SEQ_LEN})")
    parser.add_argument("--batch-size", type=positive, default=1,
                        help="llm-compressor's default: 1")
    parser.add_argument("--runs", type=positive, default=8, help="runs of a unit per timing")
    parser.add_argument("--repeats", type=positive, default=10, help="timings per unit (best kept)")
    parser.add_argument("--direct", action="store_true", help="run every counted unit instead")
    parser.add_argument("--units", action="store_true", help="print each unit's time too")
    parser.add_argument("--torch-import", action="store_true",
                        help="also time `import torch` (printed apart, not in any floor)")
    args = parser.parse_args()
    preset = PRESETS[args.model]
    s = Shape(**{f: getattr(preset, f) if getattr(args, f) is None else getattr(args, f)
                 for f in shape_options})
    if s.heads % s.kv_heads:
        parser.error(f"--heads ({s.heads}) must be a multiple of --kv-heads ({s.kv_heads})")
    if s.hidden % s.heads:
        parser.error(f"--hidden ({s.hidden}) must be a multiple of --heads ({s.heads})")
    if args.samples % args.batch_size:
        parser.error(f"--batch-size ({args.batch_size}) must divide --samples ({args.samples})")
    p = Operands(s, args.batch_size, args.seq_len)
    N = args.samples // args.batch_size
    names = list(RECIPES) if args.recipe == "all" else [args.recipe]
    counts, refused = {}, {}
    for name in names:
        try:
            counts[name] = RECIPES[name](s, N)
        except Unsupported as why:
            refused[name] = str(why)
    named = [k for k, v in PRESETS.items() if v == s]
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "unset")
    print("floor of llm-compressor 0.9's products, " + (f"{named[0]}: " if named else "")
          + f"{s.describe()}, {args.samples} × {args.seq_len} tokens in batches "
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
        print(f"{name:<28} {seconds[name]:8.2f}" if name in seconds
              else f"{name:<28} not supported for this shape: {refused[name]}")
    if args.torch_import:
        found = torch_import()
        print("import torch (/usr/bin/python3, not in the floors; Debian's torch, not the torch "
              "llm-compressor 0.9 uses): " + (f"torch {found[0]}, {found[1]:.2f} s wall, "
                                              f"{found[2]:.2f} s CPU" if found else "not found"))


if __name__ == "__main__":
    main()
