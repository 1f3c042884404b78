// sparsegpt_threshold_select: SparseGPT's unstructured threshold for one
// column block, `sort(metric.flatten())[k]` with metric = W1² / diag(U)²
// over every row of the block (k = floor(rows·count·sparsity)), found on
// the GPU by a 4-pass radix select on the f32 bit patterns (non-negative
// floats order like their bits), so the block loop never waits for the CPU.
//
//   reset       state ← {prefix 0, rank k, ...}, histogram ← 0
//   histogram   (per row chunk, pass 0..3) counts the elements whose bits
//               above the current byte equal the prefix, by that byte;
//               pass 0 also counts the preserved (already zero) entries
//   select_digit finds the byte holding rank `rank`, appends it to prefix,
//               lowers rank, clears the histogram; after pass 3:
//               state[2] = threshold bits, state[3] = extend flag
// extend = !preserve || k > preserved count (llm-compressor only extends a
// preserved mask when the target sparsity exceeds it).
// The metric formula is the same f32 expression as gptq_column_block.wgsl,
// so both kernels agree on which elements are ≤ the threshold.
//
// Bindings (reset and select_digit use 0..2, histogram 0..5):
//   0 params  uniform              { i1, count, ldw, rows, ldu, u_row0, radix_pass, preserve, k }
//   1 state   storage, read_write  atomic<u32> [8]: prefix, rank, threshold bits, extend,
//                                  preserved count, k
//   2 hist    storage, read_write  atomic<u32> [256]
//   3 wt      storage, read        f32 [.., ldw] transposed weight chunk (wt[c, r])
//   4 u       storage, read        f32 U panel holding rows i1 .. i1+count
//   5 nz      storage, read        f32 [.., ldw] 1 where the original weight ≠ 0
// Layout: reset and select_digit: one workgroup of 256 (the scan runs on one
// invocation); histogram: one invocation per row (workgroups of 64, a
// workgroup-local histogram flushed with 256 atomics); dispatch [ceil(rows/64)].

struct Params {
  i1: u32,
  count: u32,
  ldw: u32,
  rows: u32,
  ldu: u32,
  u_row0: u32,
  radix_pass: u32,
  preserve: u32,
  k: u32,
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

const PREFIX: u32 = 0u;
const RANK: u32 = 1u;
const THRESH: u32 = 2u;
const EXTEND: u32 = 3u;
const PRESERVED: u32 = 4u;
const K: u32 = 5u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> state: array<atomic<u32>, 8>;
@group(0) @binding(2) var<storage, read_write> hist: array<atomic<u32>, 256>;
@group(0) @binding(3) var<storage, read> wt: array<f32>;
@group(0) @binding(4) var<storage, read> u: array<f32>;
@group(0) @binding(5) var<storage, read> nz: array<f32>;

var<workgroup> local_hist: array<atomic<u32>, 256>;
var<workgroup> local_preserved: atomic<u32>;

@compute @workgroup_size(256)
fn reset(@builtin(local_invocation_index) lid: u32) {
  atomicStore(&hist[lid], 0u);
  if (lid == 0u) {
    for (var s = 0u; s < 8u; s++) {
      atomicStore(&state[s], 0u);
    }
    atomicStore(&state[RANK], p.k);
    atomicStore(&state[K], p.k);
  }
}

@compute @workgroup_size(64)
fn histogram(
  @builtin(global_invocation_id) gid: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  for (var b = lid; b < 256u; b += 64u) {
    atomicStore(&local_hist[b], 0u);
  }
  if (lid == 0u) {
    atomicStore(&local_preserved, 0u);
  }
  workgroupBarrier();
  let r = gid.x;
  if (r < p.rows) {
    let shift = 24u - 8u * p.radix_pass;
    let prefix = atomicLoad(&state[PREFIX]);
    var preserved = 0u;
    for (var i = 0u; i < p.count; i++) {
      let c = p.i1 + i;
      let pres = p.preserve != 0u && nz[c * p.ldw + r] == 0.0;
      let w = wt[c * p.ldw + r];
      let d = u[(c - p.u_row0) * p.ldu + c];
      let m = select((w * w) / (d * d), 0.0, pres);
      let bits = bitcast<u32>(m);
      if (pres) {
        preserved += 1u;
      }
      // Bits above this pass's byte must equal the prefix chosen so far.
      if (p.radix_pass == 0u || (bits >> (shift + 8u)) == (prefix >> (shift + 8u))) {
        atomicAdd(&local_hist[(bits >> shift) & 0xFFu], 1u);
      }
    }
    if (p.radix_pass == 0u && preserved > 0u) {
      atomicAdd(&local_preserved, preserved);
    }
  }
  workgroupBarrier();
  for (var b = lid; b < 256u; b += 64u) {
    let h = atomicLoad(&local_hist[b]);
    if (h > 0u) {
      atomicAdd(&hist[b], h);
    }
  }
  if (lid == 0u) {
    let n = atomicLoad(&local_preserved);
    if (n > 0u) {
      atomicAdd(&state[PRESERVED], n);
    }
  }
}

@compute @workgroup_size(256)
fn select_digit(@builtin(local_invocation_index) lid: u32) {
  if (lid == 0u) {
    let shift = 24u - 8u * p.radix_pass;
    let rank = atomicLoad(&state[RANK]);
    var below = 0u;
    var digit = 255u;
    for (var b = 0u; b < 256u; b++) {
      let h = atomicLoad(&hist[b]);
      if (below + h > rank) {
        digit = b;
        break;
      }
      below += h;
    }
    let prefix = atomicLoad(&state[PREFIX]) | (digit << shift);
    atomicStore(&state[PREFIX], prefix);
    atomicStore(&state[RANK], rank - below);
    if (p.radix_pass == 3u) {
      atomicStore(&state[THRESH], prefix);
      let k = atomicLoad(&state[K]);
      let extend = p.preserve == 0u || k > atomicLoad(&state[PRESERVED]);
      atomicStore(&state[EXTEND], select(0u, 1u, extend));
    }
  }
  storageBarrier();
  workgroupBarrier();
  atomicStore(&hist[lid], 0u);
}
