// matrix_permute_gather: Out[i, j] = In[σ(i), σ(j)] for a square matrix
// stored in row panels, with identity rows/columns where σ is NONE
// (0xFFFFFFFF) and an optional diagonal fix-up:
//   diag_fix = 1:  Out[i, i] = (In[σ(i), σ(i)] == 0 ? 1 : In[σ(i), σ(i)]) + damp
// GPTQ uses it to build the matrix it factors (actorder permutation, the
// reversal that turns a lower Cholesky into the upper factor of H⁻¹, dead
// columns, dampening, identity padding) and to reverse the inverse back.
// σ(i) of a whole output row lies in one input panel, so a dispatch pairs
// one output panel with one input panel and skips rows sourced elsewhere;
// the pad rows (σ = NONE) are written by the dispatch with write_pad = 1.
//
// Bindings:
//   0 params  uniform              Params (below)
//   1 perm    storage, read        u32 [n]: σ, global indices or NONE
//   2 src     storage, read        f32 input panel, rows in_row_global0 .. +in_rows, stride ld_in
//   3 dst     storage, read_write  f32 output panel, rows out_row_global0 .. +out_rows, stride ld_out
// Layout: one workgroup of 64 per output row (row = wid.x + wid.y·nwg.x);
// its invocations stride over the n columns. Dispatch a folded [out_rows].

const NONE: u32 = 0xFFFFFFFFu;

struct Params {
  n: u32,
  out_rows: u32,
  out_row_global0: u32,
  in_row_global0: u32,
  in_rows: u32,
  ld_in: u32,
  ld_out: u32,
  write_pad: u32,
  diag_fix: u32,
  damp: f32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> perm: array<u32>;
@group(0) @binding(2) var<storage, read> src: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(64)
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let i = wid.x + wid.y * nwg.x;
  if (i >= p.out_rows) {
    return;
  }
  let gi = p.out_row_global0 + i;
  let s = perm[gi];
  let out = i * p.ld_out;
  if (s == NONE) {
    if (p.write_pad == 0u) {
      return;
    }
    for (var j = lid; j < p.n; j += 64u) {
      dst[out + j] = select(0.0, 1.0, j == gi);
    }
    return;
  }
  if (s < p.in_row_global0 || s >= p.in_row_global0 + p.in_rows) {
    return;
  }
  let row = (s - p.in_row_global0) * p.ld_in;
  for (var j = lid; j < p.n; j += 64u) {
    let sj = perm[j];
    var v = 0.0;
    if (sj != NONE) {
      v = src[row + sj];
    }
    if (j == gi && p.diag_fix != 0u) {
      v = select(v, 1.0, v == 0.0) + p.damp;
    }
    dst[out + j] = v;
  }
}
