// cholesky_panel_solve: the panel step of the blocked right-looking
// Cholesky. For every row i below the diagonal block k (rows of one panel
// buffer), solves x·L_kkᵀ = A[i, k:k+64] by forward substitution, stores
// x back into A (it is L[i, k:k+64]) and also transposed into `pt`
// (pt[l, i_global] = x[l]): the K-major operand the trailing update
// (matmul_at_b_update.wgsl) reads for both of its factors.
//
// Bindings:
//   0 params  uniform              { row_local0, rows, row_global0, col0, ld, ldt }
//   1 lkk     storage, read        f32 [64·64] L_kk, row-major (from cholesky_diagonal_block)
//   2 a       storage, read_write  f32 panel [.., ld]; rows row_local0 .. row_local0+rows
//   3 pt      storage, read_write  f32 [64, ldt]; column index = global row
// Layout: one invocation per row, workgroups of 64; dispatch [ceil(rows/64)].

const NB: u32 = 64u;

struct Params {
  row_local0: u32,
  rows: u32,
  row_global0: u32,
  col0: u32,
  ld: u32,
  ldt: u32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> lkk: array<f32>;
@group(0) @binding(2) var<storage, read_write> a: array<f32>;
@group(0) @binding(3) var<storage, read_write> pt: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let r = gid.x;
  if (r >= p.rows) {
    return;
  }
  let base = (p.row_local0 + r) * p.ld + p.col0;
  let g = p.row_global0 + r;
  var x: array<f32, 64>;
  for (var j = 0u; j < NB; j++) {
    var s = a[base + j];
    for (var l = 0u; l < j; l++) {
      s -= x[l] * lkk[j * NB + l];
    }
    let v = s / lkk[j * NB + j];
    x[j] = v;
    a[base + j] = v;
    pt[j * p.ldt + g] = v;
  }
}
