// copy_columns: out[r, col0 + c] = block[r, c] for every row r and c < cols,
// i.e. writes a [rows, cols] block into columns col0 .. col0 + cols - 1 of a
// wider row-major [rows, ld] matrix (how lm_head's vocab blocks assemble the
// logits).
//
// Bindings:
//   0 block   storage, read        f32 [rows, cols]
//   1 out     storage, read_write  f32 [rows, ld]
//   2 params  uniform              { rows, cols, ld, col0 }
// Layout: one invocation per block element, 64 per workgroup; the 1-D grid
// is folded into (x, y) so it may exceed 65535 workgroups.

struct Params {
  rows: u32,
  cols: u32,
  ld: u32,
  col0: u32,
}

@group(0) @binding(0) var<storage, read> block: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(64)
fn main(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let i = (wid.y * nwg.x + wid.x) * 64u + lid;
  if (i >= params.rows * params.cols) {
    return;
  }
  let r = i / params.cols;
  let c = i % params.cols;
  out[r * params.ld + params.col0 + c] = block[i];
}
