// triangular_inverse_panel_transpose: copies the column panel
// L[rows, col0:col0+64] of a lower-triangular factor, transposed, into
// lt[64, ldt] (lt[j, i_global] = L[i, col0 + j]): the K-major left operand
// of the triangular inverse's trailing update (matmul_at_b_update.wgsl).
//
// Bindings:
//   0 params  uniform              { row_local0, rows, row_global0, col0, ld, ldt }
//   1 l       storage, read        f32 panel [.., ld]; rows row_local0 .. row_local0+rows
//   2 lt      storage, read_write  f32 [64, ldt]
// Layout: workgroup 64×4; x = row, y = column j; dispatch [ceil(rows/64), 16].

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
@group(0) @binding(1) var<storage, read> l: array<f32>;
@group(0) @binding(2) var<storage, read_write> lt: array<f32>;

@compute @workgroup_size(64, 4)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let r = gid.x;
  let j = gid.y;
  if (r >= p.rows || j >= 64u) {
    return;
  }
  lt[j * p.ldt + p.row_global0 + r] = l[(p.row_local0 + r) * p.ld + p.col0 + j];
}
