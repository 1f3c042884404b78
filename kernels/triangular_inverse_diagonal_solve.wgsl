// triangular_inverse_diagonal_solve: one block row of X = L⁻¹ (L lower,
// from the Cholesky) by the right-looking blocked forward substitution
// L·X = I. On entry B[k:k+64, 0:cols] holds I_k − Σ_{j<k} L_kj·X_j (the
// trailing updates of earlier steps); this kernel overwrites it with
// X_k = L_kk⁻¹·B_k, column by column, and copies X_k to `x` (K-major
// operand of the next trailing update, matmul_at_b_update.wgsl).
//
// A non-finite result (a tiny pivot overflowing) sets status[0] = 1.
//
// Bindings:
//   0 params  uniform              { row_local0, col0, cols, ld_l, ld_b, ldx }
//   1 l       storage, read        f32 panel of L holding rows k..k+64 (row_local0), cols col0..col0+64
//   2 b       storage, read_write  f32 panel of B holding the same rows
//   3 x       storage, read_write  f32 [64, ldx]: x[j, c] = X_k[j, c]
//   4 status  storage, read_write  atomic<u32> [2]
// Layout: one invocation per column c < cols, workgroups of 64; L_kk is
// read from the panel directly (staging it in workgroup memory measured
// 5× slower on llvmpipe); dispatch [ceil(cols/64)].

const NB: u32 = 64u;
const F32_MAX: f32 = 3.40282347e38;

struct Params {
  row_local0: u32,
  col0: u32,
  cols: u32,
  ld_l: u32,
  ld_b: u32,
  ldx: u32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> l: array<f32>;
@group(0) @binding(2) var<storage, read_write> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> x: array<f32>;
@group(0) @binding(4) var<storage, read_write> status: array<atomic<u32>, 2>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  if (c >= p.cols) {
    return;
  }
  var y: array<f32, 64>;
  var finite = true;
  for (var j = 0u; j < NB; j++) {
    let lrow = (p.row_local0 + j) * p.ld_l + p.col0;
    var s = b[(p.row_local0 + j) * p.ld_b + c];
    for (var q = 0u; q < j; q++) {
      s -= l[lrow + q] * y[q];
    }
    let v = s / l[lrow + j];
    finite = finite && abs(v) <= F32_MAX;
    y[j] = v;
    b[(p.row_local0 + j) * p.ld_b + c] = v;
    x[j * p.ldx + c] = v;
  }
  if (!finite) {
    atomicStore(&status[0], 1u);
  }
}
