// symmetric_mirror: copies the lower triangle of a symmetric matrix stored
// in row panels onto its upper triangle (A[i, j] ← A[j, i] for j > i). The
// Hessian kernels compute only the lower triangle; a gather of whole rows
// (matrix_permute_gather.wgsl) needs both.
//
// Entry points (a writable buffer may not be bound twice in one dispatch):
//   mirror_within  rows i, j both in panel `dst`
//     0 params  uniform              { rows, row_global0, ld, src_rows, src_row_global0, ld_src }
//     1 dst     storage, read_write  f32 panel [rows, ld]
//   mirror_across  rows i in `dst`, rows j in a later panel `src`
//     0 params  uniform              same struct
//     1 dst     storage, read_write  f32 panel [rows, ld]
//     2 src     storage, read        f32 panel [src_rows, ld_src], first row src_row_global0
// Layout: workgroup 16×16; x = column j (offset by the source panel's
// first row), y = local row i; dispatch [ceil(src_rows/16), ceil(rows/16)]
// (src = dst for mirror_within).

struct Params {
  rows: u32,
  row_global0: u32,
  ld: u32,
  src_rows: u32,
  src_row_global0: u32,
  ld_src: u32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<storage, read> src: array<f32>;

@compute @workgroup_size(16, 16)
fn mirror_within(@builtin(global_invocation_id) gid: vec3<u32>) {
  let jl = gid.x;
  let il = gid.y;
  if (il >= p.rows || jl >= p.rows || jl <= il) {
    return;
  }
  dst[il * p.ld + p.row_global0 + jl] = dst[jl * p.ld + p.row_global0 + il];
}

@compute @workgroup_size(16, 16)
fn mirror_across(@builtin(global_invocation_id) gid: vec3<u32>) {
  let jl = gid.x;
  let il = gid.y;
  if (il >= p.rows || jl >= p.src_rows) {
    return;
  }
  dst[il * p.ld + p.src_row_global0 + jl] = src[jl * p.ld_src + p.row_global0 + il];
}
