// embedding_gather: out[n, :] = table[ids[n] - row_start, :] for every id that
// falls inside this chunk of the embedding table.
//
// The table may be larger than one storage binding, so the host binds it in
// row chunks and dispatches once per chunk; each dispatch writes only the rows
// whose id lies in [row_start, row_start + rows) and leaves the others alone.
//
// Bindings:
//   0 table  storage, read        f32 [rows, hidden]   rows row_start.. of the [vocab, hidden] table
//   1 ids    storage, read        i32 [n]
//   2 out    storage, read_write  f32 [n, hidden]
//   3 params uniform              { row_start, rows, hidden, n }
// Layout: one invocation per output element, 64 per workgroup; the 1-D grid of
// ceil(n * hidden / 64) workgroups is folded into (x, y) so it may exceed 65535.

struct Params {
  row_start: u32,
  rows: u32,
  hidden: u32,
  n: u32,
}

@group(0) @binding(0) var<storage, read> table: array<f32>;
@group(0) @binding(1) var<storage, read> ids: array<i32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(64)
fn main(
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_index) lid: u32,
) {
  let i = (wid.y * nwg.x + wid.x) * 64u + lid;
  if (i >= params.n * params.hidden) {
    return;
  }
  let token = i / params.hidden;
  let col = i % params.hidden;
  let id = ids[token];
  if (id < i32(params.row_start) || id >= i32(params.row_start + params.rows)) {
    return;
  }
  let row = u32(id) - params.row_start;
  out[i] = table[row * params.hidden + col];
}
