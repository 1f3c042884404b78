// matrix_diagonal: copies the diagonal of one row panel of a square matrix
// into a vector: diag[row_global0 + i] = A[i, row_global0 + i].
//
// Bindings:
//   0 params  uniform              { rows, row_global0, ld }
//   1 a       storage, read        f32 panel [rows, ld]
//   2 diag    storage, read_write  f32 [n]
// Layout: one invocation per row, workgroups of 64; dispatch [ceil(rows/64)].

struct Params {
  rows: u32,
  row_global0: u32,
  ld: u32,
  _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read_write> diag: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x;
  if (i >= p.rows) {
    return;
  }
  diag[p.row_global0 + i] = a[i * p.ld + p.row_global0 + i];
}
