// cholesky_diagonal_block: factors one 64×64 diagonal block in place,
// A[k:k+64, k:k+64] = L·Lᵀ (L lower, positive diagonal), the first step of
// each panel of the blocked right-looking Cholesky. One invocation copies
// the block into `lkk`, factors it there, writes L back into A with zeros
// above the diagonal, and leaves L in `lkk` for the panel solve (which may
// run on another buffer). Columns stay unscaled during the elimination
// (A ← A − a_j·a_jᵀ / a_jj); L[i, j] = a_ij / sqrt(a_jj) is applied on write-back.
//
// Why one invocation: the elimination is serial (64 barrier-separated
// parallel steps cost more than its 44K multiply-adds on llvmpipe: 2 ms
// against 4.5 ms, measured when the block sat in workgroup memory), and with
// a single invocation no data passes between invocations through a storage
// buffer, whose writes WGSL makes visible to the rest of the workgroup only
// through storageBarrier, which not every backend honours for non-coherent
// buffers.
// Why `lkk` and not a workgroup array: Mesa's GL path (WGSL → GLSL) took
// 60–75 s to compile this kernel with a 4096-float workgroup array, and
// 8.5 s with 256 mat4x4 (measured on llvmpipe), against 55 ms without one: a
// fresh machine's first GPTQ run spent most of its time here.
//
// A pivot that is not a positive finite number means the matrix is not
// (numerically) positive definite: status[0] is set to 1 and status[1]
// keeps the smallest failing global pivot index (atomicMin). The
// factorization goes on as if the pivot were 1 so later kernels see finite numbers;
// the caller reads status once, after the whole factorization.
//
// Bindings:
//   0 params  uniform              { row_local0, col0, ld }
//   1 a       storage, read_write  f32 panel [rows, ld]: the block's first
//                                  row is row_local0, its first column col0
//   2 lkk     storage, read_write  f32 [64·64]: the working copy, then L (row-major)
//   3 status  storage, read_write  atomic<u32> [2]: failed flag, first failing pivot
// Layout: one workgroup of one invocation; dispatch [1].

const NB: u32 = 64u;
const F32_MAX: f32 = 3.40282347e38;

struct Params {
  row_local0: u32,
  col0: u32,
  ld: u32,
  _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> a: array<f32>;
@group(0) @binding(2) var<storage, read_write> lkk: array<f32>;
@group(0) @binding(3) var<storage, read_write> status: array<atomic<u32>, 2>;

fn at(r: u32, c: u32) -> u32 {
  return (p.row_local0 + r) * p.ld + p.col0 + c;
}

@compute @workgroup_size(1)
fn main() {
  for (var e = 0u; e < NB * NB; e++) {
    lkk[e] = a[at(e / NB, e % NB)];
  }
  for (var j = 0u; j < NB; j++) {
    let piv = lkk[j * NB + j];
    // NaN fails `piv > 0`; +inf fails the upper bound.
    if (!(piv > 0.0 && piv <= F32_MAX)) {
      atomicStore(&status[0], 1u);
      atomicMin(&status[1], p.col0 + j);
      continue;
    }
    for (var i = j + 1u; i < NB; i++) {
      let f = lkk[i * NB + j] / piv;
      for (var c = j + 1u; c <= i; c++) {
        lkk[i * NB + c] -= f * lkk[c * NB + j];
      }
    }
  }
  // Rows from the last up, so that the pivots a row reads (lkk[c, c], c ≤ r)
  // are still the eliminated values when L overwrites the rows below it.
  for (var rr = 0u; rr < NB; rr++) {
    let r = NB - 1u - rr;
    for (var c = 0u; c < NB; c++) {
      let piv = lkk[c * NB + c];
      let d = select(1.0, sqrt(piv), piv > 0.0 && piv <= F32_MAX);
      var v = 0.0;
      if (c == r) {
        v = d;
      } else if (c < r) {
        v = lkk[r * NB + c] / d;
      }
      a[at(r, c)] = v;
      lkk[r * NB + c] = v;
    }
  }
}
