// gptq_column_block: the sequential column loop of GPTQ / SparseGPT inside
// one block of columns [i1, i1+count) (llm-compressor 0.9
// `quantize_weight` / `sparsify_weight`), for every row of a weight chunk:
//
//   for i in block:
//     w = W1[r, i];  d = U[i, i]
//     q = w, with q = 0 where the prune mask says so (SparseGPT)
//     q = fake_quantize(q, scale[r, group(i)], zp[r, group(i)])   (if quantizing)
//     loss += (w − q)² / d²;  e = (w − q) / d
//     W1[r, i+1:] −= e · U[i, i+1:]        (× nz mask when preserving zeros)
//     W1[r, i] = q;  Err[i, r] = e
//
// Rows are independent, so one invocation owns one row and walks the
// columns in order. The weight is stored transposed (wt[c, r]) so that the
// invocations of a workgroup touch consecutive addresses. The walk goes in
// sub-blocks of 8 columns held in registers: the in-block update is applied
// eagerly inside a sub-block and once per later column of the block for the
// whole sub-block (8 multiply-adds per memory update instead of 1: a
// per-column update measured 7× slower on llvmpipe). `Err` is written
// K-major for the inter-block update W[:, i2:] −= Err·U[i1:i2, i2:]
// (matmul_at_b_update.wgsl). The block runs to a multiple of 8 columns: the
// extra columns are zero padding of the weight with identity rows in U.
//
// Fake quantization matches src/quant/quantize.ts bit for bit in f32, with
// the functions of quantize_common.wgsl that fake_quantize_*.wgsl use too:
// t = x / s + zp (div_rn, a correctly rounded division: WGSL's `/` may be
// 2.5 ULP off on real GPUs), clamp to [qmin, qmax] (NaN kept), then round
// half to even (int), float8_e4m3fn round-to-nearest-even (cast_fp8) or the
// E2M1 thresholds of cast_to_fp4 (cast_fp4); x̂ = (q − zp) · s. Scales
// arrive already divided by the global scale (tensor_group), as src/quant
// computes s_eff.
//
// Pruning (SparseGPT):
//   prune_mode 1  unstructured: pruned if preserved or (extend and
//                 W1²/d² ≤ threshold), decided from W1 at the block start;
//                 threshold and extend come from sparsegpt_threshold_select.wgsl
//   prune_mode 2  N:M: at every i % M == 0 the N smallest W1²/d² of columns
//                 i..i+M (preserved entries count as 0; ties take the lower
//                 column) are pruned, on top of the preserved ones
//   preserved = preserve != 0 and the weight was 0 on entry (nz mask 0)
//
// Bindings:
//   0 params  uniform              Params (below)
//   1 wt      storage, read_write  f32 [n_padded, ldw]: wt[c, r] = W[row_global0 + r, c]
//   2 errt    storage, read_write  f32 [count rounded up to 8, ldw]
//   3 u       storage, read        f32 panel of U (upper factor of H⁻¹), stride ldu,
//                                  first row u_row0; holds rows i1 .. i1+count
//   4 qp      storage, read        f32: scale[slot] at slot, zero point at zp_off + slot
//   5 groups  storage, read        u32 [≥ cols rounded up to 8]: qparam column slot of each
//                                  (permuted) column, 0 for padding
//   6 loss    storage, read_write  f32 [ldw]: per-row loss, accumulated over blocks
//   7 nz      storage, read        f32 [n_padded, ldw]: 1 where the weight was ≠ 0 on entry
//                                  (dead columns already zeroed)
//   8 select  storage, read        u32 [8]: [2] threshold bits, [3] extend flag (prune_mode 1)
// Layout: one invocation per row r < rows, workgroups of 64; dispatch [ceil(rows/64)].
// Pruning supports count ≤ 256 (a private bit set per row); N:M needs M to
// divide 8 or be a multiple of 8 (≤ 32), so a window is in registers or
// starts a sub-block.

struct Params {
  i1: u32,
  count: u32,
  ldw: u32,
  rows: u32,
  row_global0: u32,
  ldu: u32,
  u_row0: u32,
  num_kind: u32,
  scale_row_stride: u32,
  row_div: u32,
  zp_off: u32,
  use_nz_mask: u32,
  prune_mode: u32,
  prune_n: u32,
  prune_m: u32,
  preserve: u32,
  qmin: f32,
  qmax: f32,
  _pad0: u32,
  _pad1: u32,
}

// Columns per register-resident sub-block.
const SB: u32 = 8u;

const KIND_NONE: u32 = 0u;
const KIND_INT: u32 = 1u;
const KIND_FP8: u32 = 2u;
const KIND_FP4: u32 = 3u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> wt: array<f32>;
@group(0) @binding(2) var<storage, read_write> errt: array<f32>;
@group(0) @binding(3) var<storage, read> u: array<f32>;
@group(0) @binding(4) var<storage, read> qp: array<f32>;
@group(0) @binding(5) var<storage, read> groups: array<u32>;
@group(0) @binding(6) var<storage, read_write> loss: array<f32>;
@group(0) @binding(7) var<storage, read> nz: array<f32>;
@group(0) @binding(8) var<storage, read> sel: array<u32>;

// div_rn, clamp_keep_nan, cast_fp8, cast_fp4 (quantize_common.wgsl):
//! include "quantize_common.wgsl"

fn fake_quantize(x: f32, s: f32, zp: f32) -> f32 {
  let t = clamp_keep_nan(div_rn(x, s) + zp, p.qmin, p.qmax);
  var q = t;
  if (p.num_kind == KIND_INT) {
    q = round(t);
  } else if (p.num_kind == KIND_FP8) {
    q = cast_fp8(t);
  } else if (p.num_kind == KIND_FP4) {
    q = cast_fp4(t);
  }
  return (q - zp) * s;
}

fn is_preserved(c: u32, r: u32) -> bool {
  return p.preserve != 0u && nz[c * p.ldw + r] == 0.0;
}

fn metric(w: f32, d: f32) -> f32 {
  return (w * w) / (d * d);
}

// N:M: prunes the N smallest W1²/d² of columns i .. i+M of row r (the
// window is in the registers `w` when M ≤ 8, in memory when M is a
// multiple of 8, where i starts a sub-block and memory is up to date).
fn select_n_of_m(bits: ptr<function, array<u32, 8>>, w: ptr<function, array<f32, 8>>,
    i0: u32, i: u32, r: u32) {
  let end = min(i + p.prune_m, p.count);
  var chosen = 0u; // bit j − i: picked in this window (M ≤ 32)
  for (var n = 0u; n < p.prune_n; n++) {
    var best = 0xFFFFFFFFu;
    var best_m = 0.0;
    for (var j = i; j < end; j++) {
      if ((chosen & (1u << (j - i))) != 0u) {
        continue;
      }
      let cj = p.i1 + j;
      var x = 0.0;
      if (j - i0 < SB) {
        x = (*w)[j - i0];
      } else {
        x = wt[cj * p.ldw + r];
      }
      let m = select(metric(x, u[(cj - p.u_row0) * p.ldu + cj]), 0.0, is_preserved(cj, r));
      if (best == 0xFFFFFFFFu || m < best_m) {
        best = j;
        best_m = m;
      }
    }
    if (best != 0xFFFFFFFFu) {
      chosen |= 1u << (best - i);
      (*bits)[best / 32u] |= 1u << (best % 32u);
    }
  }
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let r = gid.x;
  if (r >= p.rows) {
    return;
  }
  var bits: array<u32, 8>;
  if (p.prune_mode == 1u) {
    let thresh = bitcast<f32>(sel[2]);
    let extend = sel[3] != 0u;
    for (var i = 0u; i < p.count; i++) {
      let c = p.i1 + i;
      let pres = is_preserved(c, r);
      let m = select(metric(wt[c * p.ldw + r], u[(c - p.u_row0) * p.ldu + c]), 0.0, pres);
      if (pres || (extend && m <= thresh)) {
        bits[i / 32u] |= 1u << (i % 32u);
      }
    }
  } else if (p.prune_mode == 2u && p.preserve != 0u) {
    for (var i = 0u; i < p.count; i++) {
      if (is_preserved(p.i1 + i, r)) {
        bits[i / 32u] |= 1u << (i % 32u);
      }
    }
  }
  let grow = ((p.row_global0 + r) / p.row_div) * p.scale_row_stride;
  var loss_acc = 0.0;
  // Sub-blocks run to the next multiple of 8: columns past `count` are the
  // weight's zero padding (identity rows of U), which quantize to 0 with no error.
  let padded = (p.count + SB - 1u) / SB * SB;
  for (var i0 = 0u; i0 < padded; i0 += SB) {
    // The sub-block lives in registers: only its loads, its stores and one
    // read-modify-write per later column of the block touch memory.
    var w: array<f32, 8>;
    var e: array<f32, 8>;
    for (var k = 0u; k < SB; k++) {
      w[k] = wt[(p.i1 + i0 + k) * p.ldw + r];
    }
    for (var k = 0u; k < SB; k++) {
      let i = i0 + k;
      let c = p.i1 + i;
      let urow = (c - p.u_row0) * p.ldu;
      if (p.prune_mode == 2u && i % p.prune_m == 0u && i < p.count) {
        select_n_of_m(&bits, &w, i0, i, r);
      }
      let x = w[k];
      let d = u[urow + c];
      var q = x;
      if (p.prune_mode != 0u && (bits[i / 32u] & (1u << (i % 32u))) != 0u) {
        q = 0.0;
      }
      if (p.num_kind != KIND_NONE) {
        let slot = grow + groups[c];
        q = fake_quantize(q, qp[slot], qp[p.zp_off + slot]);
      }
      let diff = x - q;
      loss_acc += (diff * diff) / (d * d);
      let err = diff / d;
      e[k] = err;
      for (var kk = k + 1u; kk < SB; kk++) {
        var upd = err * u[urow + c + (kk - k)];
        if (p.use_nz_mask != 0u) {
          upd *= nz[(c + kk - k) * p.ldw + r];
        }
        w[kk] -= upd;
      }
      wt[c * p.ldw + r] = q;
      errt[i * p.ldw + r] = err;
    }
    // The rest of the block gets the sub-block's errors in one update per column.
    let ubase = (p.i1 + i0 - p.u_row0) * p.ldu + p.i1;
    for (var j = i0 + SB; j < padded; j++) {
      var acc = 0.0;
      for (var k = 0u; k < SB; k++) {
        acc += e[k] * u[ubase + k * p.ldu + j];
      }
      let cj = p.i1 + j;
      if (p.use_nz_mask != 0u) {
        acc *= nz[cj * p.ldw + r];
      }
      wt[cj * p.ldw + r] -= acc;
    }
  }
  loss[r] += loss_acc / 2.0;
}
